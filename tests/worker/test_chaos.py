"""Chaos: a batch of jobs through Celery workers that are killed (SIGKILL) at random moments and replaced, with one
restart of Redis; every job still ends succeeded exactly once, with one set of artifacts, and one webhook each.

The seed of the schedule is printed (ATTENCRAFT_CHAOS_SEED replays one)."""

import io
import json
import os
import random
import secrets
import time
from collections import defaultdict
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from attencraft_cli.sample_photo import two_object_photo
from service.db import create_db_engine, create_session_factory
from service.migrate import upgrade_to_head
from service.models import Artifact, Event, Job, WebhookDelivery
from tests.service.infrastructure import S3Server, seaweedfs_s3_server, throwaway_bucket, throwaway_postgres_database
from tests.worker.cluster import (
    Process,
    api_server,
    celery_worker,
    cluster_environment,
    free_port,
    poll,
    redis_server,
    webhook_receiver,
)

pytestmark = pytest.mark.slow

JOBS = 20
STEPS = 8
CHECKPOINT_EVERY = 4
KILLS = 4
REDIS_RESTART_AFTER_KILL = 2
PAUSE_BETWEEN_KILLS_S = (2.0, 8.0)
ALL_ENDED_TIMEOUT_S = 300  # within pytest-timeout's 600 s for the whole test


def _submit(client: httpx.Client, webhook_url: str) -> str:
    buffer = io.BytesIO()
    two_object_photo().save(buffer, format="PNG")
    response = client.post(
        "/jobs",
        files={"image": ("photo.png", buffer.getvalue(), "image/png")},
        data={
            "concepts": ["ball", "box"],
            "options": json.dumps({"steps": STEPS, "seed": 3}),
            "webhook_url": webhook_url,
        },
    )
    assert response.status_code == 202, response.text
    return response.json()["id"]


def _statuses(session: Session) -> dict[str, str]:
    return {job_id: status.value for job_id, status in session.execute(select(Job.id, Job.status))}


def test_killed_workers_and_a_redis_restart_lose_no_job_and_duplicate_nothing(tmp_path: Path) -> None:
    seed = int(os.environ.get("ATTENCRAFT_CHAOS_SEED", secrets.randbelow(10**6)))
    rng = random.Random(seed)
    print(f"chaos seed {seed}")
    port = free_port()
    with ExitStack() as stack:
        database_url = stack.enter_context(throwaway_postgres_database())
        upgrade_to_head(database_url)
        (tmp_path / "seaweedfs").mkdir()
        s3 = stack.enter_context(seaweedfs_s3_server(tmp_path / "seaweedfs"))
        bucket = stack.enter_context(throwaway_bucket(s3))
        api_key = f"ak_{secrets.token_hex(16)}"
        environment = cluster_environment(
            data_dir=tmp_path / "data",
            database_url=database_url,
            s3=s3,
            storage_url=f"s3://{bucket}/chaos",
            broker_url=f"redis://127.0.0.1:{port}/0",
            api_key=api_key,
            checkpoint_every=str(CHECKPOINT_EVERY),
            stale_after_seconds="4",
            max_attempts="20",  # workers die here by the test's hand, not because of their job
        )
        (tmp_path / "redis").mkdir()
        broker = stack.enter_context(redis_server(tmp_path / "redis", port))
        base_url = stack.enter_context(api_server(environment, tmp_path / "api.log"))
        receiver = stack.enter_context(webhook_receiver())
        client = stack.enter_context(
            httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30)
        )
        engine = create_db_engine(database_url)
        stack.callback(engine.dispose)
        sessions = create_session_factory(engine)
        started_workers = 0

        def new_worker() -> Process:
            nonlocal started_workers
            started_workers += 1
            log = tmp_path / f"worker-{started_workers}.log"
            return stack.enter_context(celery_worker(environment, log, queues="training,webhooks"))

        workers = [new_worker(), new_worker()]
        job_ids = [_submit(client, receiver.url) for _ in range(JOBS)]

        def all_ended() -> bool:
            with sessions() as session:
                return all(status in ("succeeded", "failed", "canceled") for status in _statuses(session).values())

        for kill in range(1, KILLS + 1):
            time.sleep(rng.uniform(*PAUSE_BETWEEN_KILLS_S))
            if all_ended():
                break
            victim = workers.pop(rng.randrange(len(workers)))
            victim.kill()
            with sessions() as session:
                print(f"kill {kill}: {sorted(_statuses(session).values())}")
            if kill == REDIS_RESTART_AFTER_KILL:
                broker.stop()  # a real shutdown; the append-only file keeps the queued messages
                broker = stack.enter_context(redis_server(tmp_path / "redis", port))
                print("redis restarted")
            workers.append(new_worker())

        poll(all_ended, timeout_s=ALL_ENDED_TIMEOUT_S, what=f"all {JOBS} jobs to end")
        poll(lambda: len({headers["webhook-id"] for headers, _ in receiver.requests}) >= JOBS, timeout_s=120,
             what="a webhook per job")  # fmt: skip

        with sessions() as session:
            statuses = _statuses(session)
            ends = dict(
                session.execute(
                    select(Event.subject_id, func.count()).where(Event.type == "end").group_by(Event.subject_id)
                ).all()
            )
            deliveries = defaultdict(list)
            for delivery in session.scalars(select(WebhookDelivery)):
                deliveries[delivery.job_id].append(delivery)
            artifacts = defaultdict(list)
            for artifact in session.scalars(select(Artifact)):
                artifacts[artifact.job_id].append(artifact)
            attempts = {job.id: job.attempts for job in session.scalars(select(Job))}
        stored = _stored_keys(s3, bucket)
    print(f"attempts per job: {sorted(attempts.values())}")

    assert statuses == {job_id: "succeeded" for job_id in job_ids}
    assert ends == {job_id: 1 for job_id in job_ids}
    received: dict[str, set[str]] = defaultdict(set)
    for headers, body in receiver.requests:
        event: dict[str, Any] = json.loads(body)
        assert event["type"] == "job.succeeded"
        received[event["data"]["id"]].add(headers["webhook-id"])
    for job_id in job_ids:
        assert [delivery.status.value for delivery in deliveries[job_id]] == ["delivered"]
        assert received[job_id] == {deliveries[job_id][0].id}
        names = [artifact.name for artifact in artifacts[job_id]]
        assert len(names) == len(set(names)) and "weights" in names
    recorded = {f"chaos/{artifact.key}" for job in artifacts.values() for artifact in job}
    assert {key for key in stored if "/artifacts/" in key} == {key for key in recorded if "/artifacts/" in key}
    assert [key for key in stored if "/checkpoints/" in key] == []


def _stored_keys(s3: S3Server, bucket: str) -> set[str]:
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="chaos/")
    return {item["Key"] for page in pages for item in page.get("Contents", [])}
