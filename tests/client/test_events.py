"""Job.wait reads the server's event stream (text/event-stream) where it has one: progress from `progress`
events, the end from the `end` event, a dropped stream resumed with Last-Event-ID, polling when there is none.

These tests serve the stream's documented shape from an httpx.MockTransport, to drop it where they choose;
tests/client/test_client.py follows the real server's stream (tests/service/test_events.py tests the server side).
"""

import io
from datetime import UTC, datetime

import httpx
import pytest

from attencraft_client import Client
from attencraft_client.calls import download_request
from attencraft_client.events import EventStreamParser
from attencraft_contract.methods import build_recipe
from attencraft_contract.models import JobOut, JobStatus

JOB_ID = "6f1c2a4e-0d3b-4c8e-9a51-2b7d9e0f4c13"
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def job_json(status: str, step: int, total: int = 4) -> bytes:
    return (
        JobOut(
            id=JOB_ID,
            status=JobStatus(status),
            cancel_requested=False,
            progress={"step": step, "total": total},
            concepts=[],
            options={},
            recipe=build_recipe().as_dict(),
            masks_source="attention",
            image_url=None,
            webhook_url=None,
            stage_timings={},
            error=None,
            created_at=NOW,
            updated_at=NOW,
            started_at=None,
            finished_at=None,
        )
        .model_dump_json()
        .encode()
    )


def stream(*events: tuple[int, str, str]) -> bytes:
    text = ": keep-alive\n\n" + "".join(f"id: {i}\nevent: {name}\ndata: {data}\n\n" for i, name, data in events)
    return text.encode()


class FakeServer:
    """GET /jobs/{id} answers the next state; GET /jobs/{id}/events the next stream (or a status)."""

    def __init__(self, states: list[bytes], streams: list[bytes | int]) -> None:
        self.states = states
        self.streams = streams
        self.reads = 0
        self.last_event_ids: list[str | None] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            self.last_event_ids.append(request.headers.get("Last-Event-ID"))
            body = self.streams.pop(0)
            if isinstance(body, int):
                return httpx.Response(body, json={"status": body})
            return httpx.Response(200, content=body, headers={"Content-Type": "text/event-stream"})
        self.reads += 1
        return httpx.Response(200, content=self.states[min(self.reads, len(self.states)) - 1])


def client_of(server: FakeServer) -> Client:
    return Client(
        "http://api.test",
        "ak_test",
        http=httpx.Client(base_url="http://api.test", transport=httpx.MockTransport(server)),
    )


def test_the_parser_reads_events_comments_and_multi_line_data() -> None:
    parser = EventStreamParser()
    lines = [": keep-alive", "", "id: 7", "event: progress", 'data: {"step": 1,', 'data: "total": 2}', ""]
    events = [event for line in lines if (event := parser.feed(line))]
    assert [(e.id, e.name, e.data) for e in events] == [("7", "progress", {"step": 1, "total": 2})]


def test_wait_follows_the_event_stream_and_draws_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    server = FakeServer(
        [job_json("training", 0), job_json("succeeded", 4)],
        [stream((1, "progress", '{"step": 2, "total": 4}'), (2, "progress", '{"step": 4, "total": 4}'),
                (3, "end", '{"status": "succeeded"}'))],
    )  # fmt: skip
    progress = io.StringIO()
    monkeypatch.setattr("sys.stderr", progress)
    job = client_of(server).get_job(JOB_ID).wait(progress=True)

    assert job.status == JobStatus.SUCCEEDED
    assert server.reads == 2  # the job once before and once after the stream: no polling
    assert "training   [###############...............] 2/4" in progress.getvalue()
    assert progress.getvalue().rstrip().endswith("succeeded  [##############################] 4/4")


def test_a_dropped_stream_resumes_after_the_last_event() -> None:
    server = FakeServer(
        [job_json("training", 0), job_json("training", 2), job_json("succeeded", 4)],
        [stream((1, "progress", '{"step": 2, "total": 4}')), stream((2, "end", '{"status": "succeeded"}'))],
    )
    assert client_of(server).get_job(JOB_ID).wait().status == JobStatus.SUCCEEDED
    assert server.last_event_ids == [None, "1"]


@pytest.mark.parametrize("status", [404, 406])
def test_without_an_event_stream_wait_polls(status: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("attencraft_client.client.POLL_INTERVAL_S", 0)
    server = FakeServer([job_json("queued", 0), job_json("training", 2), job_json("succeeded", 4)], [status])
    job = client_of(server).get_job(JOB_ID).wait()
    assert job.status == JobStatus.SUCCEEDED and server.reads >= 3


def test_the_api_key_goes_only_to_the_api() -> None:
    http = httpx.Client(base_url="http://api.test", headers={"Authorization": "Bearer ak_secret"})
    assert download_request(http, "http://api.test/files/x?signature=s").headers["Authorization"] == "Bearer ak_secret"
    assert "Authorization" not in download_request(http, "https://bucket.s3.example/x?X-Amz-Signature=s").headers
