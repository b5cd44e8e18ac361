"""Load test of POST /jobs and GET /jobs/{id} against PostgreSQL on loopback; no training runs.

The API runs in its own uvicorn process with RecordingJobQueue, which only records submissions. Each of
--clients clients sends one request every --get-interval-ms / --post-interval-ms (the next one at once when a
response is late), over its own connection; an interval of 0 is a closed loop that measures saturation
throughput. Each phase stops after its request count or --max-seconds. Each line also gives the CPU per request
of server and client, and the share of CPU the VM host stole meanwhile: tail latency above ~10 % steal says
more about the host than about the service.

    python benchmarks/api_load.py                                  # paced: 50 clients, GET 2/s, POST 0.5/s each
    python benchmarks/api_load.py --get-interval-ms 0 --post-interval-ms 0     # saturation
    python benchmarks/api_load.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/mydb --workers 2
"""

import argparse
import asyncio
import contextlib
import io
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import psycopg
from fastapi import FastAPI
from PIL import Image

from service.app import create_app
from service.auth import create_api_key
from service.db import create_db_engine, create_session_factory
from service.migrate import upgrade_to_head
from service.queue import RecordingJobQueue
from service.settings import get_settings

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TARGET_P99_MS = {"GET /jobs/{id}": 50.0, "POST /jobs": 150.0}
SERVER_START_TIMEOUT_S = 60


def benchmark_app() -> FastAPI:
    """uvicorn factory for the server process: the real app with a queue that runs nothing."""
    return create_app(get_settings(), queue=RecordingJobQueue())


@contextmanager
def throwaway_database() -> Iterator[str]:
    name = f"attencraft_bench_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def photo_jpeg(size: int = 512) -> bytes:
    """A 512 px JPEG with photo-like detail (smooth gradients plus noise), about 100 KB."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, size)
    base = np.stack([np.add.outer(ramp, ramp) / 2, np.tile(ramp, (size, 1)), np.tile(ramp[:, None], (1, size))], -1)
    pixels = np.clip(base + rng.normal(0, 18, base.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU time of the server process and its worker processes (Linux /proc)."""
    total_ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # the process ended while we looked
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            total_ticks += int(fields[11]) + int(fields[12])
    return total_ticks / os.sysconf("SC_CLK_TCK")


def cpu_ticks() -> tuple[int, int]:
    """(steal, total) ticks of all CPUs: on a VM, steal is time the host ran someone else (Linux /proc/stat)."""
    ticks = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return ticks[7], sum(ticks)


@dataclass
class PhaseResult:
    name: str
    latencies_s: list[float]
    errors: int
    wall_s: float
    cpu_s: dict[str, float]
    steal_fraction: float

    def report(self) -> str:
        latencies = sorted(self.latencies_s)
        if not latencies:
            return f"{self.name:15} no successful requests, {self.errors} errors"
        p50 = statistics.median(latencies) * 1000
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
        verdict = "meets" if p99 < TARGET_P99_MS[self.name] else "MISSES"
        cpu_ms = {side: seconds / len(latencies) * 1000 for side, seconds in self.cpu_s.items()}
        return (
            f"{self.name:15} requests={len(latencies):5} errors={self.errors} "
            f"throughput={len(latencies) / self.wall_s:7.1f} req/s  p50={p50:6.1f} ms  p99={p99:6.1f} ms  "
            f"({verdict} p99 < {TARGET_P99_MS[self.name]:.0f} ms)  "
            f"CPU per request: server {cpu_ms['server']:.2f} ms, client {cpu_ms['client']:.2f} ms; "
            f"CPU stolen by the host {self.steal_fraction:.0%}"
        )


async def run_phase(
    name: str,
    request: Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]],
    *,
    clients: list[httpx.AsyncClient],
    interval_s: float,
    server_pid: int,
    total: int,
    max_s: float,
) -> PhaseResult:
    latencies: list[float] = []
    errors = 0
    issued = 0
    started = time.perf_counter()
    cpu_started = {"server": server_cpu_seconds(server_pid), "client": time.process_time()}
    steal_started, total_started = cpu_ticks()

    async def client_loop(client_index: int) -> None:
        nonlocal issued, errors
        next_at = started + interval_s * client_index / len(clients)  # spread the clients over one interval
        while issued < total and time.perf_counter() - started < max_s:
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            if issued >= total:
                break
            index = issued
            issued += 1
            sent = time.perf_counter()
            next_at += interval_s
            try:
                response = await request(clients[client_index], index)
            except httpx.TransportError:
                errors += 1
                continue
            latencies.append(time.perf_counter() - sent)
            errors += response.status_code >= 300

    await asyncio.gather(*(client_loop(index) for index in range(len(clients))))
    wall_s = time.perf_counter() - started
    cpu_now = {"server": server_cpu_seconds(server_pid), "client": time.process_time()}
    steal, total_ticks = cpu_ticks()
    return PhaseResult(
        name,
        latencies,
        errors,
        wall_s,
        {side: cpu_now[side] - cpu_started[side] for side in cpu_now},
        (steal - steal_started) / max(1, total_ticks - total_started),
    )


async def load(base_url: str, key: str, server_pid: int, arguments: argparse.Namespace) -> list[PhaseResult]:
    image = photo_jpeg()
    job_ids: list[str] = []
    headers = {"Authorization": f"Bearer {key}"}
    async with contextlib.AsyncExitStack() as stack:
        # One connection per client, as separate users would have; a shared pool makes the client the bottleneck.
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=base_url, headers=headers, limits=httpx.Limits(max_connections=1), timeout=60
                )
            )
            for _ in range(arguments.clients)
        ]

        async def post_job(client: httpx.AsyncClient, _index: int) -> httpx.Response:
            response = await client.post(
                "/jobs",
                files={"image": ("photo.jpg", image, "image/jpeg")},
                data={"concepts": ["cat", "dog"], "options": '{"steps": 300}'},
            )
            if response.status_code == 202:
                job_ids.append(response.json()["id"])
            return response

        async def get_job(client: httpx.AsyncClient, index: int) -> httpx.Response:
            return await client.get(f"/jobs/{job_ids[index % len(job_ids)]}")

        phases = [
            ("POST /jobs", post_job, arguments.post_requests, arguments.post_interval_ms / 1000),
            ("GET /jobs/{id}", get_job, arguments.get_requests, arguments.get_interval_ms / 1000),
        ]
        results = []
        for name, request, total, interval_s in phases:
            common = {"clients": clients, "server_pid": server_pid}
            await run_phase(name, request, interval_s=0.0, total=len(clients), max_s=30.0, **common)
            bounds = {"total": total, "max_s": arguments.max_seconds}
            results.append(await run_phase(name, request, interval_s=interval_s, **bounds, **common))
        return results


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="PostgreSQL URL (default: a throwaway database, dropped after)")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients")
    parser.add_argument("--get-interval-ms", type=float, default=500, help="per client; 0: closed loop")
    parser.add_argument("--post-interval-ms", type=float, default=2000, help="per client; 0: closed loop")
    parser.add_argument("--get-requests", type=int, default=3000)
    parser.add_argument("--post-requests", type=int, default=500)
    parser.add_argument("--max-seconds", type=float, default=60, help="time bound of each phase")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    arguments = parser.parse_args()

    with throwaway_database() if arguments.database_url is None else _given(arguments.database_url) as database_url:
        upgrade_to_head(database_url)
        engine = create_db_engine(database_url)
        with create_session_factory(engine)() as session:
            key = create_api_key(session, "benchmark")
            session.commit()
        engine.dispose()
        with tempfile.TemporaryDirectory(prefix="attencraft-bench-") as scratch:
            port = free_port()
            environment = {
                **os.environ,
                "ATTENCRAFT_DATABASE_URL": database_url,
                "ATTENCRAFT_DATA_DIR": scratch,
                "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
            }
            command = [
                sys.executable, "-m", "uvicorn", "benchmarks.api_load:benchmark_app", "--factory",
                "--host", "127.0.0.1", "--port", str(port), "--workers", str(arguments.workers),
                "--log-level", "warning", "--no-access-log", "--timeout-keep-alive", "120",
            ]  # fmt: skip
            server = subprocess.Popen(command, env=environment)
            try:
                base_url = f"http://127.0.0.1:{port}"
                _wait_until_up(f"{base_url}/healthz", server)
                print(
                    f"PostgreSQL on loopback, {arguments.workers} uvicorn worker(s), {arguments.clients} clients, "
                    f"intervals GET {arguments.get_interval_ms:g} ms, POST {arguments.post_interval_ms:g} ms"
                )
                for result in asyncio.run(load(base_url, key, server.pid, arguments)):
                    print(result.report())
            finally:
                server.terminate()
                server.wait(timeout=30)


@contextmanager
def _given(url: str) -> Iterator[str]:
    yield url


def _wait_until_up(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the API server exited with {server.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit(f"the API server did not start within {SERVER_START_TIMEOUT_S}s")


if __name__ == "__main__":
    main()
