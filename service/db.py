"""Engine and session factory for PostgreSQL (team mode) or SQLite (embedded mode)."""

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker


def _enable_sqlite_concurrency(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class DatabaseFileGone(SQLAlchemyError):
    """The SQLite file was deleted or replaced while the service ran: writing on would acknowledge work into a file
    that no restart will see."""


class SqliteFileWatch:
    """Refuses connections once the database file is no longer the one this engine first opened."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._identity: tuple[int, int] | None = None  # (device, inode) of the file first opened

    def _current(self) -> tuple[int, int] | None:
        try:
            status = os.stat(self.path)
        except FileNotFoundError:
            return None
        return status.st_dev, status.st_ino

    def check(self, *_args: Any) -> None:
        if self._identity is not None and self._current() != self._identity:
            raise DatabaseFileGone(f"the database file {self.path} was deleted or replaced while the service ran")

    def remember(self, *_args: Any) -> None:
        if self._identity is None:
            self._identity = self._current()

    def install(self, engine: Engine) -> None:
        event.listen(engine, "do_connect", self.check)  # before sqlite3 would create an empty file in its place
        event.listen(engine, "connect", self.remember)
        event.listen(engine, "checkout", self.check)


POOL_SIZE = 20
POOL_OVERFLOW = 20
POOL_TIMEOUT_S = 5.0  # a request that cannot get a connection this soon is a 503 with Retry-After


def create_db_engine(
    database_url: str,
    *,
    pool_size: int = POOL_SIZE,
    pool_overflow: int = POOL_OVERFLOW,
    pool_timeout_s: float = POOL_TIMEOUT_S,
) -> Engine:
    url = make_url(database_url)
    pool = {"pool_size": pool_size, "max_overflow": pool_overflow, "pool_timeout": pool_timeout_s}
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **pool)
        event.listen(engine, "connect", _enable_sqlite_concurrency)
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            SqliteFileWatch(Path(url.database).resolve()).install(engine)
        return engine
    if url.drivername in ("postgresql", "postgres"):  # postgres:// is what many hosting platforms hand out
        url = url.set(drivername="postgresql+psycopg")
    return create_engine(url, pool_recycle=1800, **pool)


def create_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)
