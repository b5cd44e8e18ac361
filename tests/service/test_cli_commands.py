"""`attencraft keys create` and the default tenant key of `attencraft serve`, run in-process."""

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from attencraft_cli.service_commands import add_service_commands, default_tenant_key
from service.auth import ApiKeyCache
from service.db import create_db_engine, create_session_factory
from service.migrate import upgrade_to_head
from service.settings import Settings, get_settings


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in ("ATTENCRAFT_DATABASE_URL", "ATTENCRAFT_STORAGE_URL", "ATTENCRAFT_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ATTENCRAFT_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_service_commands(parser.add_subparsers(required=True))
    arguments = parser.parse_args(argv)
    return arguments.handler(arguments)


def tenant_of(settings: Settings, key: str) -> str | None:
    engine = create_db_engine(settings.database_url)
    try:
        with create_session_factory(engine)() as session:
            tenant = ApiKeyCache(ttl_s=0).look_up_tenant(session, key)
    finally:
        engine.dispose()
    return tenant.name if tenant else None


def test_keys_create_prints_a_working_key(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("keys", "create", "--tenant", "acme") == 0
    key = capsys.readouterr().out.strip()

    settings = Settings()
    assert settings.database_url == f"sqlite:///{data_dir / 'attencraft.db'}"
    assert key.startswith("ak_") and tenant_of(settings, key) == "acme"
    assert run_cli("keys", "create", "--tenant", "acme") == 0
    assert capsys.readouterr().out.strip() != key


def test_serve_uses_the_configured_key_or_generates_one(data_dir: Path) -> None:
    settings = Settings(api_key=SecretStr("ak_chosen-by-the-operator"))
    upgrade_to_head(settings.database_url)
    engine = create_db_engine(settings.database_url)
    sessions = create_session_factory(engine)
    try:
        assert default_tenant_key(sessions, settings) == ("ak_chosen-by-the-operator", False)
        assert default_tenant_key(sessions, settings) == ("ak_chosen-by-the-operator", False)  # idempotent
        generated, was_generated = default_tenant_key(sessions, Settings())
    finally:
        engine.dispose()

    assert was_generated and generated.startswith("ak_")
    assert tenant_of(settings, "ak_chosen-by-the-operator") == tenant_of(settings, generated) == "default"


def test_migrate_creates_the_schema(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("migrate") == 0
    assert "up to date" in capsys.readouterr().out
    assert (data_dir / "attencraft.db").is_file()
    assert run_cli("migrate") == 0  # idempotent
