"""Idempotency-Key on POST /jobs and POST /generate: a retry gets the first request's resource, a different request
under the same key is a 422, keys are per tenant and last 24 h; on SQLite and PostgreSQL."""

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, update

from service.db import create_session_factory
from service.idempotency import REPLAYED_HEADER, purge_expired_keys
from service.models import IdempotencyKey, Job, utc_now
from service.queue import QueueUnavailable, RecordingJobQueue
from service.storage import LocalDirectoryStore
from tests.service.job_requests import assert_problem, image_bytes, post_job


def _post_job(client: TestClient, key: str, **fields: Any) -> Any:
    client.headers["Idempotency-Key"] = key
    try:
        return post_job(client, **fields)
    finally:
        del client.headers["Idempotency-Key"]


def _age_key(engine: Engine, key: str, by: timedelta) -> None:
    with create_session_factory(engine)() as session:
        aged = update(IdempotencyKey).where(IdempotencyKey.key == key)
        session.execute(aged.values(created_at=utc_now() - by))  # created a moment ago
        session.commit()


def test_a_retried_job_submission_returns_the_first_job(client: TestClient, queue: RecordingJobQueue) -> None:
    first = _post_job(client, "retry-1", concepts=["cat", "dog"], options={"steps": 10})
    again = _post_job(client, "retry-1", concepts=["Cat", "dog"], options={"steps": 10})  # the same names

    assert first.status_code == again.status_code == 202, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.headers[REPLAYED_HEADER] == "true" and REPLAYED_HEADER not in first.headers
    assert queue.submitted == [first.json()["id"]]
    assert len(client.get("/jobs").json()["items"]) == 1


def test_the_same_key_with_a_different_job_is_a_422(client: TestClient, queue: RecordingJobQueue) -> None:
    _post_job(client, "retry-2", concepts=["cat", "dog"])
    for different in ({"concepts": ["cat", "owl"]}, {"image": image_bytes(size=(40, 40))}, {"options": {"seed": 9}}):
        problem = assert_problem(_post_job(client, "retry-2", **different), 422, "different request")
        assert problem["code"] == "idempotency_key_reused"
    assert len(queue.submitted) == 1


def test_keys_belong_to_their_tenant_and_requests_without_one_are_new(
    client: TestClient, app_client: TestClient, new_api_key: Callable[[], str], queue: RecordingJobQueue
) -> None:
    mine = _post_job(client, "shared-key").json()["id"]
    other_headers = {"Authorization": f"Bearer {new_api_key()}", "Idempotency-Key": "shared-key"}
    files = {"image": ("photo.png", image_bytes(), "image/png")}
    theirs = app_client.post("/jobs", files=files, data={"concepts": ["cat", "dog"]}, headers=other_headers)
    assert theirs.status_code == 202 and theirs.json()["id"] != mine
    assert post_job(client).json()["id"] != post_job(client).json()["id"]
    assert len(queue.submitted) == 4


def test_a_key_expires_after_24_hours(client: TestClient, engine: Engine) -> None:
    first = _post_job(client, "old-key").json()["id"]
    _age_key(engine, "old-key", timedelta(hours=24, seconds=1))
    second = _post_job(client, "old-key", concepts=["owl", "fox"])
    assert second.status_code == 202 and second.json()["id"] != first
    assert _post_job(client, "old-key", concepts=["owl", "fox"]).json()["id"] == second.json()["id"]


def test_a_malformed_key_is_a_422(client: TestClient) -> None:
    for key in ("x" * 256, "two words"):
        problem = assert_problem(_post_job(client, key), 422)
        assert problem["errors"][0]["field"] == "Idempotency-Key"


class FlakyQueue(RecordingJobQueue):
    """Refuses the next job when told to."""

    refuse_next = False

    def submit_job(self, job_id: str) -> None:
        if self.refuse_next:
            self.refuse_next = False
            raise QueueUnavailable(job_id)
        super().submit_job(job_id)


@pytest.fixture
def queue() -> FlakyQueue:
    return FlakyQueue()


def test_a_retry_after_the_queue_refused_the_job_starts_it(client: TestClient, queue: FlakyQueue) -> None:
    queue.refuse_next = True
    assert_problem(_post_job(client, "after-503"), 503)
    retried = _post_job(client, "after-503")
    assert retried.status_code == 202 and REPLAYED_HEADER not in retried.headers
    assert queue.submitted == [retried.json()["id"]]


def test_concurrent_retries_create_one_job_and_keep_no_other_upload(
    client: TestClient, engine: Engine, local_store: LocalDirectoryStore
) -> None:
    results: list[Any] = []
    barrier = threading.Barrier(6)

    def submit() -> None:
        barrier.wait()
        results.append(post_job(client))

    client.headers["Idempotency-Key"] = "concurrent"
    threads = [threading.Thread(target=submit) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    del client.headers["Idempotency-Key"]

    created = {response.json()["id"] for response in results if response.status_code == 202}
    assert len(created) == 1, [response.text for response in results]
    with create_session_factory(engine)() as session:
        tenant_id = session.scalar(select(Job.tenant_id).where(Job.id.in_(created)))
        assert session.scalar(select(func.count()).select_from(Job).where(Job.tenant_id == tenant_id)) == 1
    uploads = (local_store.root / "tenants" / tenant_id / "jobs").rglob("*")
    assert {path.relative_to(local_store.root).parts[3] for path in uploads if path.is_file()} == created


def test_a_retried_generation_returns_the_first_one(
    client: TestClient, queue: RecordingJobQueue, trained_job: Callable[..., dict[str, Any]]
) -> None:
    job = trained_job()
    body = {"concept_ids": [concept["id"] for concept in job["concepts"]], "prompt": "<ball> on <box>"}
    headers = {"Idempotency-Key": "draw-1"}

    first = client.post("/generate", json=body, headers=headers)
    again = client.post("/generate", json=body, headers=headers)
    changed = client.post("/generate", json=body | {"num_images": 2}, headers=headers)

    assert first.status_code == again.status_code == 202, again.text
    assert again.json()["id"] == first.json()["id"] and again.json()["seed"] == first.json()["seed"]
    assert again.headers[REPLAYED_HEADER] == "true"
    assert queue.submitted_generations == [first.json()["id"]]
    assert assert_problem(changed, 422)["code"] == "idempotency_key_reused"


def test_the_sweep_deletes_expired_keys(client: TestClient, engine: Engine) -> None:
    _post_job(client, "kept")
    _post_job(client, "expired")
    _age_key(engine, "expired", timedelta(hours=25))
    with create_session_factory(engine)() as session:
        assert purge_expired_keys(session, utc_now()) >= 1
        session.commit()
        assert set(session.scalars(select(IdempotencyKey.key).where(IdempotencyKey.key.in_(["kept", "expired"])))) == {
            "kept"
        }
