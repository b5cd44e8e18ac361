"""Alembic environment: the URL comes from the service settings unless the caller passes an engine URL."""

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from service.db import create_db_engine
from service.models import Base
from service.settings import get_settings

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run_migrations_online() -> None:
    database_url = config.attributes.get("database_url") or get_settings().database_url
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


run_migrations_online()
