"""Server-sent events: how soon a submitted job's first progress event arrives, and how many events per second
the API streams to 50 open streams, against 1 stream as the baseline in the same process.

Part 1 runs the embedded service (SQLite, in-process worker, the tiny model on the CPU) over HTTP and times
POST /jobs -> the first `status` event (claimed), the first `progress` event (a training step done) and `end`.
Part 2 serves the API with a queue that runs nothing; a writer thread appends progress events to the event log
the way workers do (one transaction each) at --rate per stream, and N clients follow N jobs' streams over HTTP.
Each event carries its append time, so the client sees the delivery latency (the streams poll the log every
POLL_INTERVAL_S through the process's one event hub). It prints events/s delivered and latency percentiles for 1
and --streams streams.

    python benchmarks/event_streams.py                       # SQLite
    python benchmarks/event_streams.py --streams-only        # part 2 only
    python benchmarks/event_streams.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/mydb
"""

import argparse
import asyncio
import io
import json
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

from attencraft_cli.sample_photo import two_object_photo
from attencraft_cli.service_commands import embedded_service
from attencraft_contract.models import EventType
from service.app import create_app
from service.auth import create_api_key
from service.db import create_db_engine, create_session_factory
from service.event_log import append_job_event
from service.event_stream import POLL_INTERVAL_S
from service.migrate import upgrade_to_head
from service.queue import RecordingJobQueue
from service.settings import Settings


@contextmanager
def served(app: FastAPI) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.02)
        try:
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        finally:
            server.should_exit = True
            thread.join(10)


def photo_png() -> bytes:
    buffer = io.BytesIO()
    two_object_photo(128).save(buffer, format="PNG")
    return buffer.getvalue()


def submit(client: httpx.Client, steps: int) -> str:
    response = client.post(
        "/jobs",
        files={"image": ("photo.png", photo_png(), "image/png")},
        data={"concepts": ["ball", "box"], "options": json.dumps({"steps": steps})},
    )
    response.raise_for_status()
    return response.json()["id"]


def events(client: httpx.Client, path: str) -> Iterator[tuple[str, dict]]:
    with client.stream("GET", path, timeout=httpx.Timeout(30, read=600)) as response:
        name = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                yield name, json.loads(line.removeprefix("data: "))


def time_to_first_progress(data_dir: Path, steps: int) -> dict[str, float]:
    settings = Settings(data_dir=data_dir, base_model="tiny", device="cpu")
    with embedded_service(settings) as service, served(service.app) as url:
        service.queue.model.wait()  # the base model is loaded: time the job, not the start
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {service.new_key()}"}) as client:
            started = time.perf_counter()
            job_id = submit(client, steps)
            seen: dict[str, float] = {"submitted": time.perf_counter() - started}
            for name, data in events(client, f"/jobs/{job_id}/events"):
                label = f"{name}:{data.get('status')}" if name == EventType.STATUS else name
                seen.setdefault(label, time.perf_counter() - started)
                if name == EventType.END:
                    break
    return seen


async def follow(url: str, key: str, job_id: str, expected: int, latencies: list[float]) -> None:
    async with (
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=None) as client,
        client.stream("GET", f"/jobs/{job_id}/events") as response,
    ):
        received = 0
        async for line in response.aiter_lines():
            if line.startswith("data: ") and "sent_at" in line:
                latencies.append(time.time() - json.loads(line.removeprefix("data: "))["sent_at"])
                received += 1
                if received == expected:
                    return


def stream_throughput(database_url: str, data_dir: Path, streams: int, rate: float, seconds: float) -> dict:
    engine = create_db_engine(database_url)
    sessions = create_session_factory(engine)
    settings = Settings(data_dir=data_dir, database_url=database_url, api_threads=64)
    with sessions() as session:
        key = create_api_key(session, f"bench-{time.monotonic_ns()}")
        session.commit()
    app = create_app(settings, queue=RecordingJobQueue(), engine=engine)
    with served(app) as url, httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as client:
        job_ids = [submit(client, 10) for _ in range(streams)]
        per_stream = int(rate * seconds)
        latencies: list[float] = []

        def write() -> None:
            for round_ in range(per_stream):
                due = started + round_ / rate
                time.sleep(max(0.0, due - time.perf_counter()))
                for job_id in job_ids:
                    with sessions() as session:
                        append_job_event(session, job_id, EventType.PROGRESS, {"sent_at": time.time()})
                        session.commit()

        async def run() -> None:
            followers = [follow(url, key, job_id, per_stream, latencies) for job_id in job_ids]
            await asyncio.gather(*followers)

        started = time.perf_counter()
        writer = threading.Thread(target=write)
        writer.start()
        asyncio.run(run())
        elapsed = time.perf_counter() - started
        writer.join()
    engine.dispose()
    latencies.sort()
    return {
        "streams": streams,
        "events": len(latencies),
        "events_per_s": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p95_ms": 1000 * latencies[int(0.95 * (len(latencies) - 1))],
        "max_ms": 1000 * latencies[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=None, help="default: a SQLite file in a temporary folder")
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--rate", type=float, default=2.0, help="events per second per stream")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--steps", type=int, default=20, help="training steps of part 1's job")
    parser.add_argument("--streams-only", action="store_true", help="run part 2 only (part 1 trains a job)")
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="attencraft-bench-") as scratch:
        if not arguments.streams_only:
            print("part 1: embedded service, tiny model on the CPU, seconds after POST /jobs was sent")
            for label, seconds in time_to_first_progress(Path(scratch) / "embedded", arguments.steps).items():
                print(f"  {label:<22} {seconds:7.2f} s")

        database_url = arguments.database_url or f"sqlite:///{Path(scratch) / 'streams.db'}"
        upgrade_to_head(database_url)
        print(
            f"part 2: {arguments.rate:g} events/s per stream for {arguments.seconds:g} s, streams poll every "
            f"{POLL_INTERVAL_S} s ({database_url.split(':')[0]})"
        )
        results = [
            stream_throughput(database_url, Path(scratch) / "streams", streams, arguments.rate, arguments.seconds)
            for streams in (1, arguments.streams)
        ]
        for result in results:
            print(
                f"  {result['streams']:>3} streams: {result['events_per_s']:8.1f} events/s delivered "
                f"({result['events']} events), latency p50 {result['p50_ms']:6.1f} ms, p95 {result['p95_ms']:6.1f} ms, "
                f"max {result['max_ms']:6.1f} ms"
            )
        baseline, loaded = results
        throughput_ratio = loaded["events_per_s"] / baseline["events_per_s"]
        print(
            f"  ratio {loaded['streams']} streams / 1 stream: events/s x{throughput_ratio:.1f} "
            f"(ideal x{loaded['streams']}), p95 latency x{loaded['p95_ms'] / baseline['p95_ms']:.2f}"
        )


if __name__ == "__main__":
    main()
