"""Alembic: upgrading an empty database to head yields exactly the ORM models."""

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from service.db import create_db_engine
from service.migrate import alembic_config, upgrade_to_head
from service.models import Base
from tests.service.infrastructure import throwaway_postgres_database


def _differences(database_url: str) -> list:
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def test_postgresql_head_matches_models() -> None:
    with throwaway_postgres_database() as url:
        upgrade_to_head(url)
        assert _differences(url) == []


def test_sqlite_head_matches_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    upgrade_to_head(url)
    assert _differences(url) == []


def test_downgrade_to_base_and_up_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'roundtrip.db'}"
    upgrade_to_head(url)
    command.downgrade(alembic_config(url), "base")
    upgrade_to_head(url)
    assert _differences(url) == []
