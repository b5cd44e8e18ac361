"""Fixtures: migrated PostgreSQL and SQLite databases, local and S3 stores, API clients per tenant, trained jobs."""

import io
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update

from service.app import create_app
from service.auth import create_api_key
from service.db import create_db_engine, create_session_factory
from service.migrate import upgrade_to_head
from service.models import Artifact, Job, JobStatus
from service.prompts import TOKENIZER_ARTIFACT
from service.queue import RecordingJobQueue
from service.settings import Settings
from service.storage import LocalDirectoryStore, ObjectStore, S3Store
from tests.service.infrastructure import S3Server, seaweedfs_s3_server, throwaway_bucket, throwaway_postgres_database
from tests.service.job_requests import post_job, word_tokenizer

DATABASE_BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def postgresql_url() -> Iterator[str]:
    with throwaway_postgres_database() as url:
        upgrade_to_head(url)
        yield url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'attencraft.db'}"
    upgrade_to_head(url)
    return url


@pytest.fixture(scope="session")
def engines() -> Iterator[dict[str, Engine]]:
    created: dict[str, Engine] = {}
    yield created
    for engine in created.values():
        engine.dispose()


@pytest.fixture(params=DATABASE_BACKENDS)
def engine(request: pytest.FixtureRequest, engines: dict[str, Engine]) -> Engine:
    backend = request.param
    if backend not in engines:
        engines[backend] = create_db_engine(request.getfixturevalue(f"{backend}_url"))
    return engines[backend]


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with seaweedfs_s3_server(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture(scope="session")
def s3_bucket(s3_server: S3Server) -> Iterator[str]:
    with throwaway_bucket(s3_server) as bucket:
        yield bucket


@pytest.fixture
def s3_store(s3_server: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> S3Store:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    return S3Store(
        s3_bucket, prefix=f"run-{secrets.token_hex(4)}", endpoint_url=s3_server.endpoint_url, region="us-east-1"
    )


@pytest.fixture
def local_store(tmp_path: Path) -> LocalDirectoryStore:
    return LocalDirectoryStore(tmp_path / "store", secrets.token_bytes(32))


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest) -> ObjectStore:
    return request.getfixturevalue(f"{request.param}_store")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", max_upload_bytes=200_000, max_image_pixels=1_000_000)


@pytest.fixture
def queue() -> RecordingJobQueue:
    return RecordingJobQueue()


@pytest.fixture
def app_client(
    settings: Settings, queue: RecordingJobQueue, engine: Engine, local_store: LocalDirectoryStore
) -> Iterator[TestClient]:
    """An unauthenticated client of an app on the parametrized database and a local store."""
    app = create_app(settings, queue=queue, store=local_store, engine=engine)
    with TestClient(app) as client:
        yield client


@pytest.fixture
def new_api_key(engine: Engine) -> Callable[[], str]:
    """Create a fresh tenant with a key; tests share the database, tenants keep them apart."""

    def create() -> str:
        with create_session_factory(engine)() as session:
            key = create_api_key(session, f"tenant-{secrets.token_hex(6)}")
            session.commit()
        return key

    return create


@pytest.fixture
def client(app_client: TestClient, new_api_key: Callable[[], str]) -> TestClient:
    """A client authenticated as a fresh tenant."""
    app_client.headers["Authorization"] = f"Bearer {new_api_key()}"
    return app_client


@pytest.fixture
def trained_job(client: TestClient, engine: Engine, local_store: LocalDirectoryStore) -> Callable[..., dict[str, Any]]:
    """A job of the client's tenant, moved to a final state as a worker would; returns the job as the API shows it."""

    def create(status: JobStatus = JobStatus.SUCCEEDED, concepts: tuple[str, ...] = ("ball", "box")) -> dict[str, Any]:
        job = post_job(client, concepts=list(concepts)).json()
        with create_session_factory(engine)() as session:
            row = session.get_one(Job, job["id"])
            key = f"tenants/{row.tenant_id}/jobs/{row.id}/artifacts/tokenizer.json"
            stored = local_store.put(key, io.BytesIO(word_tokenizer()), content_type="application/json")
            session.execute(update(Job).where(Job.id == row.id).values(status=status))
            session.add(
                Artifact(
                    tenant_id=row.tenant_id,
                    job_id=row.id,
                    name=TOKENIZER_ARTIFACT,
                    key=stored.key,
                    size=stored.size,
                    sha256=stored.sha256,
                    content_type=stored.content_type,
                )
            )
            session.commit()
        return client.get(f"/jobs/{job['id']}").json()

    return create
