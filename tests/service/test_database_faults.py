"""The SQLite file deleted or replaced under a running service: readiness fails and nothing more is acknowledged
into a file that no restart would see."""

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.auth import create_api_key
from service.db import create_db_engine, create_session_factory
from service.migrate import upgrade_to_head
from service.queue import RecordingJobQueue
from service.settings import Settings
from service.storage import LocalDirectoryStore
from tests.service.job_requests import post_job


@pytest.fixture
def database_file(tmp_path: Path) -> Path:
    path = tmp_path / "db" / "attencraft.db"
    upgrade_to_head(f"sqlite:///{path}")
    return path


@pytest.fixture
def client(database_file: Path, settings: Settings, local_store: LocalDirectoryStore) -> Iterator[TestClient]:
    engine = create_db_engine(f"sqlite:///{database_file}")
    with create_session_factory(engine)() as session:
        key = create_api_key(session, "files")
        session.commit()
    app = create_app(settings, queue=RecordingJobQueue(), store=local_store, engine=engine)
    try:
        with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as test_client:
            yield test_client
    finally:
        engine.dispose()


def delete(database_file: Path) -> None:
    for path in database_file.parent.glob(f"{database_file.name}*"):
        path.unlink()


def replace(database_file: Path) -> None:
    shutil.copy(database_file, database_file.with_suffix(".copy"))
    database_file.with_suffix(".copy").replace(database_file)


@pytest.mark.parametrize("fault", [delete, replace])
def test_a_database_file_gone_or_replaced_is_503_and_not_ready(client: TestClient, database_file: Path, fault) -> None:
    assert post_job(client).status_code == 202
    fault(database_file)

    refused = post_job(client)
    readiness = client.get("/readyz")

    assert refused.status_code == 503 and refused.json()["code"] == "database_down", refused.text
    assert "Retry-After" in refused.headers
    assert readiness.status_code == 503
    assert {"field": "database", "message": "unavailable: DatabaseFileGone"} in readiness.json()["errors"]
    assert fault is replace or not database_file.exists()  # no empty database was created in its place
