"""Webhook deliveries and stale-job sweeps against the database, without a broker: the logic the Celery tasks
and the embedded mode's sender threads share."""

import contextlib
import io
import json
import socket
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks import Webhook

from attencraft_cli.sample_photo import two_object_photo
from attencraft_cli.service_commands import embedded_service
from service import repository
from service.db import POOL_OVERFLOW, POOL_SIZE
from service.models import DeliveryStatus, Job, JobStatus, WebhookDelivery, utc_now
from service.settings import Settings
from tests.worker.cluster import poll, webhook_receiver
from worker.deliveries import deliver

LEASE = timedelta(seconds=60)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path, webhook_allow_loopback=True, webhook_retry_scale=0.001, webhook_timeout_seconds=2
    )


def _ended_job_with_webhook(sessions: sessionmaker[Session], queued_job: Callable[..., str], url: str) -> str:
    """A job that failed with a webhook URL: its one delivery is pending and due."""
    job_id = queued_job()
    with sessions() as session:
        session.execute(update(Job).where(Job.id == job_id).values(webhook_url=url))
        assert repository.fail_job(session, job_id, "broken", "It broke.")
        session.commit()
    return job_id


def _delivery(sessions: sessionmaker[Session], job_id: str) -> WebhookDelivery:
    with sessions() as session:
        tenant_id = session.get_one(Job, job_id).tenant_id
        (delivery,) = repository.list_deliveries(session, tenant_id, job_id)
        return delivery


def test_a_terminal_transition_queues_one_event_that_one_sweep_claims(
    sessions: sessionmaker[Session], queued_job: Callable[..., str]
) -> None:
    job_id = _ended_job_with_webhook(sessions, queued_job, "http://127.0.0.1:9/hooks")
    delivery = _delivery(sessions, job_id)
    assert (delivery.event_type, delivery.status, delivery.attempt_log) == ("job.failed", "pending", [])
    assert delivery.id.startswith("msg_") and delivery.payload["data"]["error"]["code"] == "broken"

    with sessions() as session:
        first, second = repository.claim_due_deliveries(session, LEASE), repository.claim_due_deliveries(session, LEASE)
        session.commit()
    assert (first, second) == ([delivery.id], [])


def test_410_gives_up_after_one_attempt(
    sessions: sessionmaker[Session], queued_job: Callable[..., str], settings: Settings
) -> None:
    with webhook_receiver() as receiver:
        receiver.statuses = [410]
        job_id = _ended_job_with_webhook(sessions, queued_job, receiver.url)
        delivery_id = _delivery(sessions, job_id).id
        deliver(sessions, settings, delivery_id)
        deliver(sessions, settings, delivery_id)  # a duplicate message: the delivery already ended

    delivery = _delivery(sessions, job_id)
    assert delivery.status == DeliveryStatus.FAILED and delivery.next_attempt_at is None
    assert [entry["status_code"] for entry in delivery.attempt_log] == [410]
    assert len(receiver.requests) == 1


def test_a_refused_target_is_never_contacted(
    sessions: sessionmaker[Session], queued_job: Callable[..., str], settings: Settings
) -> None:
    with webhook_receiver() as receiver:
        job_id = _ended_job_with_webhook(sessions, queued_job, receiver.url)
        deliver(sessions, settings.model_copy(update={"webhook_allow_loopback": False}), _delivery(sessions, job_id).id)

    delivery = _delivery(sessions, job_id)
    assert delivery.status == DeliveryStatus.FAILED and "loopback" in delivery.attempt_log[0]["error"]
    assert receiver.requests == []


def test_a_stale_running_job_is_requeued_and_resumes_as_a_new_attempt(
    sessions: sessionmaker[Session], queued_job: Callable[..., str]
) -> None:
    job_id = queued_job()
    with sessions() as session:
        assert repository.claim_job(session, job_id) == 1
        runs = [{"attempt": 1, "from_step": 0, "to_step": 4}]
        assert repository.record_checkpoint(session, job_id, 1, "checkpoint-key", 4, runs) is None
        session.commit()
        assert (
            repository.requeue_stale_jobs(session, utc_now() - timedelta(minutes=1), max_attempts=3) == []
        )  # fresh heartbeat
        assert repository.requeue_stale_jobs(session, utc_now() + timedelta(seconds=1), max_attempts=3) == [job_id]
        assert repository.claim_job(session, job_id) == 2
        session.commit()
        assert repository.should_stop(session, job_id, 1)  # the first attempt, were it alive, is fenced out
        assert not repository.beat(session, job_id, 1) and repository.beat(session, job_id, 2)
        job = session.get_one(Job, job_id)
        session.refresh(job)
    assert job.status == JobStatus.MASKING and job.checkpoint_key == "checkpoint-key"
    assert job.runs == [
        {"attempt": 1, "from_step": 0, "to_step": 4},
        {"attempt": 2, "from_step": 4, "to_step": 4},
    ]


def test_the_embedded_service_trains_and_delivers_webhooks_from_its_own_threads_and_pool(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, base_model="tiny", device="cpu", webhook_allow_loopback=True, sweep_interval_seconds=0.2
    )
    buffer = io.BytesIO()
    two_object_photo().save(buffer, format="PNG")
    with (
        webhook_receiver() as receiver,
        embedded_service(settings) as service,
        TestClient(service.app, headers={"Authorization": f"Bearer {service.new_key()}"}) as client,
    ):
        job = client.post(
            "/jobs",
            files={"image": ("photo.png", buffer.getvalue(), "image/png")},
            data={"concepts": ["ball", "box"], "options": json.dumps({"steps": 2}), "webhook_url": receiver.url},
        ).json()
        with contextlib.ExitStack() as api_pool_held:  # busy requests: the worker must not need their connections
            api_engine = service.sessions.kw["bind"]
            for _ in range(POOL_SIZE + POOL_OVERFLOW):
                api_pool_held.enter_context(api_engine.connect())
            poll(lambda: receiver.requests, timeout_s=180, what="the webhook")
        secret = client.get("/webhooks/secret").json()["secret"]
    headers, body = receiver.requests[0]
    event = Webhook(secret).verify(body, headers)
    assert (event["type"], event["data"]["id"], event["data"]["status"]) == ("job.succeeded", job["id"], "succeeded")


def test_a_delivery_connects_to_the_address_it_checked_not_to_a_second_answer(
    sessions: sessionmaker[Session], queued_job: Callable[..., str], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name answers loopback (allowed here) when checked, then an unroutable address; no
    resolver on this machine can do that, so getaddrinfo answers for the made-up name."""
    real_getaddrinfo = socket.getaddrinfo
    answers = iter(["127.0.0.1"])

    def rebinding_getaddrinfo(host: str, port: object, *args: object, **kwargs: object) -> list[Any]:
        if host != "hooks.rebinding.test":
            return real_getaddrinfo(host, port, *args, **kwargs)
        address = next(answers, "192.0.2.1")  # TEST-NET-1: nothing answers there
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_getaddrinfo)
    with webhook_receiver() as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        job_id = _ended_job_with_webhook(sessions, queued_job, f"http://hooks.rebinding.test:{port}/hooks")
        deliver(sessions, settings, _delivery(sessions, job_id).id)
    assert _delivery(sessions, job_id).status == DeliveryStatus.DELIVERED
    ((headers, _body),) = receiver.requests
    assert headers["host"] == f"hooks.rebinding.test:{port}"
