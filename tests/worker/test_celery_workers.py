"""The distributed mode with real processes: `attencraft serve` on Celery, `attencraft worker`s on Redis,
PostgreSQL, a SeaweedFS S3 bucket, the tiny model, and a webhook receiver on loopback."""

import io
import json
import secrets
import signal
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import Engine
from standardwebhooks import Webhook

from attencraft_cli.sample_photo import two_object_photo
from attencraft_client.events import Event, EventStreamParser
from service.db import create_db_engine, create_session_factory
from service.migrate import upgrade_to_head
from service.models import Job
from tests.service.infrastructure import (
    S3Server,
    seaweedfs_s3_server,
    throwaway_bucket,
    throwaway_postgres_database,
)
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

TRAIN_STEPS = 8
CHECKPOINT_EVERY = 4
JOB_TIMEOUT_S = 240
TERMINAL = ("succeeded", "failed", "canceled")
REDIS_URL = "redis://127.0.0.1:6379"


@dataclass(frozen=True)
class Cluster:
    environment: dict[str, str]
    client: httpx.Client
    engine: Engine
    s3: S3Server
    bucket: str
    store_prefix: str
    logs: Path

    def worker(
        self, name: str, *, queues: str = "training", environment: dict[str, str] | None = None
    ) -> AbstractContextManager[Process]:
        return celery_worker(environment or self.environment, self.logs / f"{name}.log", queues=queues)

    def submit(
        self, *, steps: int = TRAIN_STEPS, webhook_url: str | None = None, client: httpx.Client | None = None
    ) -> dict[str, Any]:
        buffer = io.BytesIO()
        two_object_photo().save(buffer, format="PNG")
        data: dict[str, Any] = {"concepts": ["ball", "box"], "options": json.dumps({"steps": steps, "seed": 3})}
        if webhook_url:
            data["webhook_url"] = webhook_url
        response = (client or self.client).post(
            "/jobs", files={"image": ("photo.png", buffer.getvalue(), "image/png")}, data=data
        )
        assert response.status_code == 202, response.text
        return response.json()

    def job(self, job_id: str, client: httpx.Client | None = None) -> dict[str, Any]:
        return (client or self.client).get(f"/jobs/{job_id}").json()

    def events(self, path: str) -> list[Event]:
        """Follow an event stream of the API process to its end."""
        parser = EventStreamParser()
        with self.client.stream("GET", path, timeout=httpx.Timeout(30, read=JOB_TIMEOUT_S)) as response:
            assert response.status_code == 200
            return [event for line in response.iter_lines() if (event := parser.feed(line))]

    def wait_until_ended(self, job_id: str, client: httpx.Client | None = None) -> dict[str, Any]:
        return poll(
            lambda: (job := self.job(job_id, client))["status"] in TERMINAL and job,
            timeout_s=JOB_TIMEOUT_S,
            what=f"job {job_id} to end",
        )

    def row(self, job_id: str) -> Job:
        with create_session_factory(self.engine)() as session:
            job = session.get_one(Job, job_id)
            _ = job.artifacts
            return job

    def keys(self, prefix: str) -> list[str]:
        pages = (
            self.s3.client()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=self.bucket, Prefix=f"{self.store_prefix}/{prefix}")
        )
        return sorted(
            item["Key"].removeprefix(f"{self.store_prefix}/") for page in pages for item in page.get("Contents", [])
        )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    logs = tmp_path_factory.mktemp("cluster")
    redis_db = 1 + secrets.randbelow(15)
    with ExitStack() as stack:
        database_url = stack.enter_context(throwaway_postgres_database())
        upgrade_to_head(database_url)
        s3 = stack.enter_context(seaweedfs_s3_server(tmp_path_factory.mktemp("seaweedfs")))
        bucket = stack.enter_context(throwaway_bucket(s3))
        api_key = f"ak_{secrets.token_hex(16)}"
        store_prefix = f"run-{secrets.token_hex(4)}"
        environment = cluster_environment(
            data_dir=logs / "data",
            database_url=database_url,
            s3=s3,
            storage_url=f"s3://{bucket}/{store_prefix}",
            broker_url=f"{REDIS_URL}/{redis_db}",
            api_key=api_key,
            checkpoint_every=str(CHECKPOINT_EVERY),
        )
        stack.callback(redis.Redis.from_url(f"{REDIS_URL}/{redis_db}").flushdb)
        base_url = stack.enter_context(api_server(environment, logs / "api.log"))
        stack.enter_context(celery_worker(environment, logs / "webhooks.log", queues="webhooks"))
        engine = create_db_engine(database_url)
        stack.callback(engine.dispose)
        client = stack.enter_context(
            httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30)
        )
        yield Cluster(environment, client, engine, s3, bucket, store_prefix, logs)


def test_a_worker_runs_the_job_and_the_receiver_verifies_the_signed_webhook(cluster: Cluster) -> None:
    with webhook_receiver() as receiver, cluster.worker("worker"):
        job = cluster.submit(webhook_url=receiver.url)
        events = cluster.events(f"/jobs/{job['id']}/events")  # the worker's progress, through another process
        final = cluster.job(job["id"])
        assert final["status"] == "succeeded", final["error"]
        poll(lambda: receiver.requests, timeout_s=60, what="the webhook")

    statuses = [event.data["status"] for event in events if event.name == "status"]
    assert statuses == ["queued", "masking", "estimating", "training", "saving"]
    assert {"masks", "ratios", "progress"} <= {event.name for event in events}
    progress = [event.data for event in events if event.name == "progress"]
    assert progress[-1]["step"] == progress[-1]["total"] == TRAIN_STEPS
    assert [loss["step"] for report in progress for loss in report["losses"]] == list(range(1, TRAIN_STEPS + 1))
    assert (events[-1].name, events[-1].data["status"]) == ("end", "succeeded")

    headers, body = receiver.requests[0]
    secret = cluster.client.get("/webhooks/secret").json()["secret"]
    event = Webhook(secret).verify(body, headers)
    assert event["type"] == "job.succeeded"
    assert (event["data"]["id"], event["data"]["status"]) == (job["id"], "succeeded")
    deliveries = cluster.client.get(f"/jobs/{job['id']}/webhooks").json()["items"]
    assert [(d["webhook_id"], d["status"]) for d in deliveries] == [(headers["webhook-id"], "delivered")]
    assert [attempt["status_code"] for attempt in deliveries[0]["attempts"]] == [200]
    row = cluster.row(job["id"])
    assert row.runs == [{"attempt": 1, "from_step": 0, "to_step": TRAIN_STEPS}]
    prefix = f"tenants/{row.tenant_id}/jobs/{job['id']}"
    assert cluster.keys(f"{prefix}/checkpoints/") == []
    assert {artifact.key for artifact in row.artifacts} >= set(cluster.keys(f"{prefix}/artifacts/"))


def test_a_job_whose_worker_is_killed_resumes_from_its_checkpoint(cluster: Cluster) -> None:
    steps = 5 * CHECKPOINT_EVERY
    with ExitStack() as first_worker:
        first = first_worker.enter_context(cluster.worker("killed-worker"))
        job = cluster.submit(steps=steps)
        checkpoint_step = poll(
            lambda: cluster.row(job["id"]).checkpoint_step, timeout_s=JOB_TIMEOUT_S, what="a checkpoint"
        )
        first.kill()  # SIGKILL to the main process and its pool process: no chance to clean up
    assert first.popen.returncode == -signal.SIGKILL
    assert cluster.job(job["id"])["status"] not in TERMINAL

    with cluster.worker("second-worker"):
        final = cluster.wait_until_ended(job["id"])
    assert final["status"] == "succeeded", final["error"]
    assert final["progress"] == {"step": steps, "total": steps}

    row = cluster.row(job["id"])
    first_run, second_run = row.runs
    assert (first_run["attempt"], first_run["from_step"]) == (1, 0)
    assert first_run["to_step"] >= checkpoint_step >= CHECKPOINT_EVERY
    assert second_run["attempt"] == 2 and second_run["to_step"] == steps
    assert CHECKPOINT_EVERY <= second_run["from_step"] <= first_run["to_step"]
    assert second_run["from_step"] % CHECKPOINT_EVERY == 0
    prefix = f"tenants/{row.tenant_id}/jobs/{job['id']}"
    names = [artifact.name for artifact in row.artifacts]
    assert len(names) == len(set(names)) and "weights" in names
    stored = set(cluster.keys(f"{prefix}/artifacts/"))
    assert stored == {artifact.key for artifact in row.artifacts if "/artifacts/" in artifact.key}
    assert cluster.keys(f"{prefix}/checkpoints/") == []


def test_webhook_retries_keep_one_id_and_never_touch_the_job(cluster: Cluster) -> None:
    closed_port = free_port()
    with webhook_receiver() as receiver, cluster.worker("retry-worker"):
        receiver.statuses = [500, 500]
        flaky = cluster.submit(steps=2, webhook_url=receiver.url)
        unreachable = cluster.submit(steps=2, webhook_url=f"http://127.0.0.1:{closed_port}/hooks")
        assert cluster.wait_until_ended(flaky["id"])["status"] == "succeeded"
        assert cluster.wait_until_ended(unreachable["id"])["status"] == "succeeded"

        def deliveries(job_id: str) -> list[dict[str, Any]]:
            return cluster.client.get(f"/jobs/{job_id}/webhooks").json()["items"]

        poll(lambda: deliveries(flaky["id"])[0]["status"] == "delivered", timeout_s=90, what="the third attempt")
        poll(lambda: len(deliveries(unreachable["id"])[0]["attempts"]) >= 3, timeout_s=90, what="three attempts")

    assert [attempt["status_code"] for attempt in deliveries(flaky["id"])[0]["attempts"]] == [500, 500, 200]
    assert len(receiver.requests) == 3
    assert len({headers["webhook-id"] for headers, _ in receiver.requests}) == 1
    assert len({body for _, body in receiver.requests}) == 1
    down = deliveries(unreachable["id"])[0]
    assert down["status"] == "pending" and all(a["status_code"] is None and a["error"] for a in down["attempts"])
    assert cluster.job(flaky["id"])["status"] == cluster.job(unreachable["id"])["status"] == "succeeded"


def test_cancel_during_training_frees_the_worker_for_the_next_job(cluster: Cluster) -> None:
    with cluster.worker("cancel-worker"):
        long_job = cluster.submit(steps=2000)
        next_job = cluster.submit(steps=2)
        poll(
            lambda: (job := cluster.job(long_job["id"]))["status"] == "training" and job["progress"]["step"] > 0,
            timeout_s=JOB_TIMEOUT_S,
            what="training to start",
        )
        assert cluster.client.post(f"/jobs/{long_job['id']}/cancel").status_code == 202
        assert cluster.wait_until_ended(long_job["id"])["status"] == "canceled"
        assert cluster.wait_until_ended(next_job["id"])["status"] == "succeeded"
    assert cluster.job(long_job["id"])["progress"]["step"] < 2000


def test_a_job_queued_while_redis_restarts_still_runs(cluster: Cluster, tmp_path: Path) -> None:
    port = free_port()
    environment = {**cluster.environment, "ATTENCRAFT_BROKER_URL": f"redis://127.0.0.1:{port}/0"}
    with redis_server(tmp_path, port) as broker:
        with (
            api_server(environment, cluster.logs / "restart-api.log") as base_url,
            httpx.Client(base_url=base_url, headers=cluster.client.headers, timeout=30) as client,
        ):
            job = cluster.submit(steps=2, client=client)
            assert redis.Redis(port=port).llen("training") == 1
        broker.stop()  # a real shutdown of the server; the append-only file keeps the message
        with redis_server(tmp_path, port), cluster.worker("restart-worker", environment=environment):
            assert cluster.wait_until_ended(job["id"])["status"] == "succeeded"


def test_a_generation_runs_on_the_inference_queue_of_a_real_worker(cluster: Cluster) -> None:
    with cluster.worker("gpu-worker", queues="training,inference"):
        job = cluster.wait_until_ended(cluster.submit()["id"])
        assert job["status"] == "succeeded", job["error"]
        placeholders = [concept["placeholder"] for concept in job["concepts"]]
        response = cluster.client.post(
            "/generate",
            json={
                "concept_ids": [concept["id"] for concept in job["concepts"]],
                "prompt": f"{placeholders[0]} and {placeholders[1]} on the beach",
                "steps": 2,
                "seed": 3,
            },
            headers={"Prefer": "wait=60"},
            timeout=90,
        )
        events = cluster.events(f"/generations/{response.json()['id']}/events")
    assert response.status_code == 200, response.text
    generation = response.json()
    assert (generation["status"], generation["seed"], len(generation["images"])) == ("succeeded", 3, 1)
    assert [(event.name, event.data["status"]) for event in events] == [
        ("status", "queued"),
        ("status", "running"),
        ("end", "succeeded"),
    ]
