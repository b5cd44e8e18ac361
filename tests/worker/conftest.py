"""Fixtures for the worker glue: a migrated SQLite database, a local store, the tiny model kept warm."""

import functools
import io
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from attencraft_cli.sample_photo import two_object_photo
from attencraft_core.models import BaseModel, load_base_model
from service.auth import get_or_create_tenant
from service.db import create_db_engine, create_session_factory
from service.migrate import upgrade_to_head
from service.models import new_id
from service.repository import NewConcept, add_job
from service.storage import LocalDirectoryStore
from service.storage.layout import job_prefix
from worker.inference import ConceptSetCache, GenerationRunner
from worker.jobs import JobRunner

TRAIN_STEPS = 6


@pytest.fixture(scope="session")
def tiny_model() -> BaseModel:
    return load_base_model("tiny", device="cpu")


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path / 'worker.db'}"
    upgrade_to_head(url)
    engine = create_db_engine(url)
    yield create_session_factory(engine)
    engine.dispose()


@pytest.fixture
def store(tmp_path: Path) -> LocalDirectoryStore:
    return LocalDirectoryStore(tmp_path / "store", secrets.token_bytes(32))


@pytest.fixture
def runner(sessions: sessionmaker[Session], store: LocalDirectoryStore, tiny_model: BaseModel) -> JobRunner:
    return JobRunner(sessions, store, lambda: tiny_model)


@pytest.fixture
def generation_runner(
    sessions: sessionmaker[Session], store: LocalDirectoryStore, tiny_model: BaseModel
) -> GenerationRunner:
    return GenerationRunner(sessions, store, lambda: tiny_model, ConceptSetCache(store, 64 * 1024 * 1024))


def insert_queued_job(
    sessions: sessionmaker[Session],
    store: LocalDirectoryStore,
    *,
    steps: int = TRAIN_STEPS,
    seed: int = 3,
    user_masks: list[bytes] | None = None,
    method_options: dict[str, object] | None = None,
) -> str:
    """Insert a queued two-concept job (<ball>, <box>) the way POST /jobs does; returns its id.

    `method_options`: JobOptions fields that choose the method (method, preset, prior_images, ablations...)."""
    image = two_object_photo()
    with sessions() as session:
        tenant = get_or_create_tenant(session, "worker-tests")
        job_id = new_id()
        prefix = f"{job_prefix(tenant.id, job_id)}/input"
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        buffer.seek(0)
        stored = store.put(f"{prefix}/image.png", buffer, content_type="image/png")
        mask_keys = [
            store.put(f"{prefix}/mask_{i}.png", io.BytesIO(mask), content_type="image/png").key
            for i, mask in enumerate(user_masks or [])
        ] or [None, None]
        add_job(
            session,
            job_id=job_id,
            tenant_id=tenant.id,
            concepts=[NewConcept("ball", None, mask_keys[0]), NewConcept("box", "cube", mask_keys[1])],
            options={"steps": steps, "seed": seed, **(method_options or {})},
            image=stored,
            webhook_url=None,
        )
        session.commit()
    return job_id


@pytest.fixture
def queued_job(sessions: sessionmaker[Session], store: LocalDirectoryStore) -> Callable[..., str]:
    return functools.partial(insert_queued_job, sessions, store)
