"""The embedded server (`attencraft serve`, its in-process worker training a job) under many clients that poll,
submit and cancel, on SQLite and PostgreSQL, bounded in time and on 127.0.0.1 only.

For each database the server process trains one long job on the tiny model; the script first measures the job's
step rate with no other client (the baseline), then runs each --clients level for --seconds: every client polls
GET /jobs/{id} of the training job in a closed loop, and every 20th request submits a small job and cancels it at
once. Each level prints throughput, p50/p99/max latency, the longest gap without any completed request, the
statuses other than 2xx, and the training's step rate under that load as a ratio of the baseline.

    python -m benchmarks.load_while_training                        # 50, 100 and 200 clients, both databases
    python -m benchmarks.load_while_training --clients 200 --seconds 20 --databases sqlite
"""

import argparse
import asyncio
import io
import itertools
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from attencraft_cli.sample_photo import two_object_photo
from benchmarks.api_load import throwaway_database

TRAINING_STEPS = 2000  # far more than a run lasts: the job trains throughout and is canceled at the end
SUBMIT_EVERY = 20  # every 20th request of a client submits a job and cancels it
SERVER_START_TIMEOUT_S = 180
BASELINE_MIN_SECONDS = 20  # progress is recorded about once a second: a short window misreads a slow step rate
API_KEY = "ak_load-benchmark-" + secrets.token_urlsafe(8)


@dataclass
class Level:
    clients: int
    latencies: list[float] = field(default_factory=list)
    completions: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


def photo_png() -> bytes:
    buffer = io.BytesIO()
    two_object_photo(128).save(buffer, format="PNG")
    return buffer.getvalue()


@contextmanager
def embedded_server(database_url: str, data_dir: Path) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {name: value for name, value in os.environ.items() if not name.startswith("ATTENCRAFT_")}
    environment |= {
        "ATTENCRAFT_DATA_DIR": str(data_dir),
        "ATTENCRAFT_DATABASE_URL": database_url,
        "ATTENCRAFT_API_KEY": API_KEY,
        "ATTENCRAFT_CHECKPOINT_EVERY": "0",
    }
    command = [sys.executable, "-m", "attencraft_cli.main", "serve", "--model", "tiny", "--device", "cpu"]
    with (data_dir / "server.log").open("wb") as log:
        server = subprocess.Popen([*command, "--port", str(port)], env=environment, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None:
                raise SystemExit(f"the server exited; see {data_dir / 'server.log'}")
            time.sleep(0.5)
        else:
            raise SystemExit(f"the server was not ready within {SERVER_START_TIMEOUT_S} s")
        yield url
    finally:
        server.terminate()
        server.wait(30)


def submission(http: httpx.Client | httpx.AsyncClient, photo: bytes, steps: int) -> httpx.Request:
    files = {"image": ("photo.png", photo, "image/png")}
    return http.build_request(
        "POST", "/jobs", files=files, data={"concepts": ["ball", "box"], "options": f'{{"steps": {steps}}}'}
    )


def step_rate(url: str, job_id: str, seconds: float) -> float:
    """Training steps per second over ``seconds``, from the job's progress."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60) as http:
        first = http.get(f"/jobs/{job_id}").json()["progress"]["step"]
        started = time.monotonic()
        time.sleep(seconds)
        last = http.get(f"/jobs/{job_id}").json()["progress"]["step"]
    return (last - first) / (time.monotonic() - started)


async def client_loop(http: httpx.AsyncClient, job_id: str, photo: bytes, until: float, level: Level) -> None:
    for count in itertools.count(1):
        if time.monotonic() >= until:
            return
        started = time.monotonic()
        try:
            if count % SUBMIT_EVERY:
                response = await http.get(f"/jobs/{job_id}")
            else:
                response = await http.send(submission(http, photo, steps=5))
                if response.status_code == 202:
                    response = await http.post(f"/jobs/{response.json()['id']}/cancel")
            level.statuses[response.status_code] += 1
        except httpx.HTTPError as error:
            level.errors[type(error).__name__] += 1
            continue
        now = time.monotonic()
        level.latencies.append(now - started)
        level.completions.append(now)


async def run_level(url: str, job_id: str, photo: bytes, clients: int, seconds: float) -> Level:
    level = Level(clients)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as http:
        started = time.monotonic()
        level.completions.append(started)
        await asyncio.gather(*(client_loop(http, job_id, photo, started + seconds, level) for _ in range(clients)))
    return level


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def report(database: str, level: Level, seconds: float, rate: float, baseline: float) -> None:
    gaps = [later - earlier for earlier, later in itertools.pairwise(sorted(level.completions))]
    others = {status: n for status, n in sorted(level.statuses.items()) if not 200 <= status < 300}
    p50_ms, p99_ms = statistics.median(level.latencies) * 1000, percentile(level.latencies, 0.99) * 1000
    print(
        f"{database:10} {level.clients:4d} clients: {len(level.latencies) / seconds:7.1f} req/s  "
        f"p50 {p50_ms:6.1f} ms  p99 {p99_ms:7.1f} ms  max {max(level.latencies) * 1000:7.1f} ms  "
        f"longest gap {max(gaps):5.2f} s  "
        f"training {rate:5.2f} steps/s ({f'{rate / baseline:4.2f}x' if baseline else 'n/a'} of idle)  "
        f"non-2xx {others or 'none'}  errors {dict(level.errors) or 'none'}"
    )


def bench_database(database: str, database_url: str, arguments: argparse.Namespace) -> None:
    photo = photo_png()
    with (
        tempfile.TemporaryDirectory(prefix="attencraft-load-") as data_dir,
        embedded_server(database_url, Path(data_dir)) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60) as http,
    ):
        job_id = http.send(submission(http, photo, TRAINING_STEPS)).json()["id"]
        while http.get(f"/jobs/{job_id}").json()["status"] != "training":
            time.sleep(0.5)
        baseline = step_rate(url, job_id, arguments.seconds)
        print(f"{database:10}    0 clients: training {baseline:5.2f} steps/s (the baseline)")
        for clients in arguments.clients:
            started_step = http.get(f"/jobs/{job_id}").json()["progress"]["step"]
            started = time.monotonic()
            level = asyncio.run(run_level(url, job_id, photo, clients, arguments.seconds))
            rate = (http.get(f"/jobs/{job_id}").json()["progress"]["step"] - started_step) / (
                time.monotonic() - started
            )
            report(database, level, arguments.seconds, rate, baseline)
        http.post(f"/jobs/{job_id}/cancel")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each load level")
    parser.add_argument("--databases", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite", "postgresql"])
    arguments = parser.parse_args()
    for database in arguments.databases:
        if database == "sqlite":
            with tempfile.TemporaryDirectory(prefix="attencraft-load-db-") as folder:
                bench_database(database, f"sqlite:///{folder}/attencraft.db", arguments)
        else:
            with throwaway_database() as url:
                bench_database(database, url, arguments)


if __name__ == "__main__":
    main()
