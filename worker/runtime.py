"""What a worker process opens once: settings, database sessions, the store and the base model (loaded lazily)."""

import functools
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from attencraft_core.models import BaseModel
from service.db import create_db_engine, create_session_factory
from service.settings import Settings, get_settings
from service.storage import ObjectStore, create_store
from worker.inprocess import WarmModel


@dataclass(frozen=True)
class WorkerRuntime:
    settings: Settings
    sessions: sessionmaker[Session]
    store: ObjectStore
    load_model: Callable[[], BaseModel]


@functools.cache
def worker_runtime() -> WorkerRuntime:
    """One per process, opened on first use: after the fork, so pool processes share no connections."""
    settings = get_settings()
    return WorkerRuntime(
        settings=settings,
        sessions=create_session_factory(create_db_engine(settings.database_url)),
        store=create_store(settings),
        load_model=WarmModel(settings),
    )
