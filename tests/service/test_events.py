"""GET /jobs/{id}/events and GET /generations/{id}/events on both databases: the replayed log, resuming after
Last-Event-ID, the end, keep-alives while idle, live events written meanwhile, auth and tenancy; the loss history.

A worker's writes are made here with the same repository functions the worker calls (tests/worker and the
Celery and embedded tests run the real worker against the streams)."""

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event

from service import generation_repository, repository
from service.auth import revoke_api_key
from service.db import create_db_engine, create_session_factory
from service.event_stream import POLL_INTERVAL_S, EventHub
from service.models import Job, JobStatus, new_id
from service.settings import Settings
from tests.service.infrastructure import served_over_http
from tests.service.job_requests import assert_problem, post_job

LOSS = {"timestep": 7, "loss": 0.5, "reconstruction": 0.4, "attention": 0.1}


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "data", event_keepalive_seconds=0.3)


def read_events(lines: Iterator[str], *, until_end: bool = True) -> list[tuple[int, str, dict[str, Any]]]:
    """Parse `id/event/data` blocks until the stream closes (or, with until_end=False, the first keep-alive)."""
    events: list[tuple[int, str, dict[str, Any]]] = []
    block: dict[str, str] = {}
    for line in lines:
        if line.startswith(": keep-alive") and not until_end:
            break
        if line == "" and "event" in block:
            events.append((int(block["id"]), block["event"], json.loads(block["data"])))
            block = {}
        elif ":" in line and not line.startswith(":"):
            field, _, value = line.partition(": ")
            block[field] = value
    return events


def stream(client: TestClient, path: str, **headers: str) -> list[tuple[int, str, dict[str, Any]]]:
    with client.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        return read_events(response.iter_lines())


def run_like_a_worker(engine: Engine, job_id: str) -> None:
    """Claim, two stages, masks, ratios, two progress reports, then fail: the worker's writes, committed."""
    with create_session_factory(engine)() as session:
        attempt = repository.claim_job(session, job_id)
        assert attempt == 1
        repository.record_masks(session, job_id, attempt, ["m0.png", "m1.png"])
        repository.enter_stage(session, job_id, JobStatus.ESTIMATING, {}, attempt=attempt)
        repository.record_ratios(session, job_id, attempt, [0.75, 0.25])
        repository.enter_stage(session, job_id, JobStatus.TRAINING, {}, attempt=attempt)
        for step in (1, 2):
            losses = [{"step": step, "subset": ["cat"], **LOSS}]
            stage = {"name": "identifiers+kv", "number": 1, "count": 1}
            repository.record_progress(
                session,
                job_id,
                attempt,
                [],
                step=step,
                total=4,
                eta_seconds=2.0 / step,
                losses=losses,
                training_stage=stage,
            )
        repository.fail_job(session, job_id, "out_of_memory", "Too big.", attempt=attempt)
        session.commit()


def test_the_stream_replays_the_job_and_ends_with_its_terminal_state(client: TestClient, engine: Engine) -> None:
    job = post_job(client).json()
    run_like_a_worker(engine, job["id"])

    events = stream(client, f"/jobs/{job['id']}/events")

    assert [(kind, data.get("status")) for _, kind, data in events] == [
        ("status", "queued"),
        ("status", "masking"),
        ("masks", None),
        ("status", "estimating"),
        ("ratios", None),
        ("status", "training"),
        ("progress", "training"),
        ("progress", "training"),
        ("end", "failed"),
    ]
    ids = [event_id for event_id, _, _ in events]
    assert ids == sorted(set(ids))
    _, _, masks = events[2]
    _, _, ratios = events[4]
    _, _, progress = events[7]
    _, _, end = events[-1]
    assert masks == {"count": 2} and ratios == {"ratios": [0.75, 0.25]}
    assert progress == {
        "status": "training",
        "step": 2,
        "total": 4,
        "training_stage": {"name": "identifiers+kv", "number": 1, "count": 1},
        "eta_seconds": 1.0,
        "losses": [{"step": 2, "subset": ["cat"], **LOSS}],
    }
    assert end == {"status": "failed", "error": {"code": "out_of_memory", "message": "Too big."}}


def test_last_event_id_resumes_after_it_and_after_the_end_nothing_is_left(client: TestClient, engine: Engine) -> None:
    job = post_job(client).json()
    run_like_a_worker(engine, job["id"])
    everything = stream(client, f"/jobs/{job['id']}/events")

    resumed = stream(client, f"/jobs/{job['id']}/events", **{"Last-Event-ID": str(everything[3][0])})
    after_the_end = stream(client, f"/jobs/{job['id']}/events", **{"Last-Event-ID": str(everything[-1][0])})

    assert resumed == everything[4:]
    assert after_the_end == []


def test_an_idle_stream_keeps_alive_then_delivers_what_happens_and_ends(client: TestClient, engine: Engine) -> None:
    job = post_job(client).json()
    with client.stream("GET", f"/jobs/{job['id']}/events") as response:
        lines = response.iter_lines()
        before = read_events(lines, until_end=False)  # returns at the first keep-alive: nothing else happened
        started = time.monotonic()
        worker = threading.Thread(target=run_like_a_worker, args=(engine, job["id"]))
        worker.start()
        live = read_events(lines)
        worker.join()
    assert [kind for _, kind, _ in before] == ["status"]
    assert [kind for _, kind, _ in live][-1] == "end" and len(live) == 8
    assert time.monotonic() - started < 10


def test_streams_need_the_key_and_belong_to_their_tenant(
    app_client: TestClient, client: TestClient, new_api_key: Callable[[], str]
) -> None:
    job = post_job(client).json()
    path = f"/jobs/{job['id']}/events"
    other_tenant = {"Authorization": f"Bearer {new_api_key()}"}

    assert_problem(app_client.get(path, headers={"Authorization": ""}), 401)
    assert_problem(app_client.get(path, headers=other_tenant), 404, "no job")
    assert_problem(app_client.get(f"/generations/{new_id()}/events", headers=other_tenant), 404, "no generation")
    bad_resume = assert_problem(client.get(path, headers={"Last-Event-ID": "seven"}), 422)
    assert bad_resume["errors"][0]["field"].lower().endswith("last-event-id")


def test_an_open_stream_ends_within_seconds_of_its_key_being_revoked(client: TestClient, engine: Engine) -> None:
    job = post_job(client).json()
    key = client.headers["Authorization"].removeprefix("Bearer ")
    path = f"/jobs/{job['id']}/events"
    with client.stream("GET", path) as response:
        lines = response.iter_lines()
        read_events(lines, until_end=False)  # open and idle
        with create_session_factory(engine)() as session:
            revoke_api_key(session, key)
            session.commit()
        revoked = time.monotonic()
        for line in lines:  # keep-alives (every 0.3 s here) until the server closes the stream
            assert not line.startswith("event:"), line
            if time.monotonic() - revoked > 10:
                pytest.fail("the stream stayed open 10 s after its key was revoked")
        closed_after_s = time.monotonic() - revoked
    assert closed_after_s < 5
    assert assert_problem(client.get(path), 401)["code"] == "invalid_api_key"


def test_open_streams_share_one_poller_of_the_event_log(client: TestClient, engine: Engine) -> None:
    streams = 6
    job_ids = [post_job(client).json()["id"] for _ in range(streams)]
    following = threading.Barrier(streams + 1)
    done = threading.Event()
    reads: list[str] = []

    def follow(base_url: str, job_id: str) -> None:
        with (
            httpx.Client(base_url=base_url, headers=client.headers, timeout=30) as http,
            http.stream("GET", f"/jobs/{job_id}/events") as response,
        ):
            lines = response.iter_lines()
            read_events(lines, until_end=False)  # replayed, now following: keep-alives every 0.3 s
            following.wait()
            for _ in lines:
                if done.is_set():
                    return

    def count_event_reads(_connection: object, _cursor: object, statement: str, *_args: object) -> None:
        if "FROM events" in statement:
            reads.append(statement)

    with served_over_http(client.app) as base_url:
        followers = [threading.Thread(target=follow, args=(base_url, job_id)) for job_id in job_ids]
        for follower in followers:
            follower.start()
        following.wait(timeout=30)
        event.listen(engine, "before_cursor_execute", count_event_reads)
        time.sleep(2)
        event.remove(engine, "before_cursor_execute", count_event_reads)
        done.set()
        for follower in followers:
            follower.join(10)
    polls = 2 / POLL_INTERVAL_S
    assert len(reads) <= polls + 2, f"{len(reads)} reads of the event log in 2 s for {streams} streams"


def test_a_generation_streams_started_then_its_end(client: TestClient, engine: Engine) -> None:
    job = post_job(client).json()
    with create_session_factory(engine)() as session:
        tenant_id = session.get_one(Job, job["id"]).tenant_id
        generation = generation_repository.add_generation(
            session,
            tenant_id=tenant_id,
            job_id=job["id"],
            concept_ids=[],
            prompt="<cat>",
            negative_prompt="",
            options={"num_images": 1},
            seed=1,
        )
        session.commit()
        assert generation_repository.claim_batch(session, generation.id, 8)
        generation_repository.finish_generation(session, generation.id, ["0.png"])
        session.commit()

    events = stream(client, f"/generations/{generation.id}/events")

    assert [(kind, data["status"]) for _, kind, data in events] == [
        ("status", "queued"),
        ("status", "running"),
        ("end", "succeeded"),
    ]


def test_the_loss_history_has_every_reported_step_once(client: TestClient, engine: Engine) -> None:
    job = post_job(client).json()
    run_like_a_worker(engine, job["id"])

    history = client.get(f"/jobs/{job['id']}/losses").json()

    assert history == {
        "job_id": job["id"],
        "items": [{"step": step, "subset": ["cat"], **LOSS} for step in (1, 2)],
    }


def test_the_poller_stops_quietly_when_the_last_stream_closes_during_its_sleep(tmp_path, caplog):
    engine = create_db_engine(f"sqlite:///{tmp_path / 'events.db'}")
    hub = EventHub(create_session_factory(engine))

    async def follow_and_leave() -> None:
        subscription = hub.subscribe("a-job", "a-key", 0)
        await asyncio.sleep(POLL_INTERVAL_S / 2)  # the poller is asleep
        hub.unsubscribe(subscription)
        assert hub._poller is not None
        await asyncio.wait_for(hub._poller, timeout=5 * POLL_INTERVAL_S)

    try:
        asyncio.run(follow_and_leave())
    finally:
        engine.dispose()
    assert "reading the event log failed" not in caplog.text
