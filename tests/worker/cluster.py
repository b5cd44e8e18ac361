"""Real processes for the distributed mode: `attencraft serve` on Celery, `attencraft worker`s, Redis servers,
and a scripted webhook receiver."""

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import redis

from tests.service.infrastructure import S3Server, wait_for_http

START_TIMEOUT_S = 120
STOP_TIMEOUT_S = 30
POLL_INTERVAL_S = 0.3


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def poll(condition: Callable[[], object], *, timeout_s: float, what: str) -> object:
    """The condition's first truthy value; fails after timeout_s (generous: this machine may be slow)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(POLL_INTERVAL_S)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def attencraft_environment(settings: dict[str, str], **variables: str) -> dict[str, str]:
    """This process's environment without its ATTENCRAFT_* variables, plus the given settings and variables."""
    inherited = {name: value for name, value in os.environ.items() if not name.startswith("ATTENCRAFT_")}
    return {
        **inherited,
        "PYTHONUNBUFFERED": "1",
        **variables,
        **{f"ATTENCRAFT_{name.upper()}": value for name, value in settings.items()},
    }


def cluster_environment(
    *, data_dir: Path, database_url: str, s3: S3Server, storage_url: str, broker_url: str, api_key: str, **settings: str
) -> dict[str, str]:
    """The environment of every process of one cluster: its database, bucket and broker, the tiny model on the CPU,
    a failed worker noticed within seconds, webhooks to loopback retried within seconds; ``settings`` override."""
    return attencraft_environment(
        {
            "data_dir": str(data_dir),
            "database_url": database_url,
            "storage_url": storage_url,
            "s3_endpoint_url": s3.endpoint_url,
            "broker_url": broker_url,
            "api_key": api_key,
            "secret_key": secrets.token_hex(16),
            "base_model": "tiny",
            "device": "cpu",
            "heartbeat_interval_seconds": "0.5",
            "stale_after_seconds": "5",
            "sweep_interval_seconds": "0.5",
            "webhook_allow_loopback": "true",
            "webhook_timeout_seconds": "2",
            "webhook_retry_scale": "0.002",
            **settings,
        },
        AWS_ACCESS_KEY_ID=s3.access_key,
        AWS_SECRET_ACCESS_KEY=s3.secret_key,
    )


@dataclass
class Process:
    """A process started in its own session, so that kill() takes its children (Celery's pool) with it."""

    popen: subprocess.Popen[bytes]
    log_path: Path

    def kill(self) -> None:
        """SIGKILL the whole process group: what a node loss or the OOM killer does."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill()
        with contextlib.suppress(ProcessLookupError):  # pool processes outlive a main process that died first
            os.killpg(self.popen.pid, signal.SIGKILL)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def started(command: list[str], log_path: Path, environment: dict[str, str] | None = None) -> Iterator[Process]:
    with log_path.open("ab") as log:
        popen = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    process = Process(popen, log_path)
    try:
        yield process
    finally:
        process.stop()


@contextmanager
def api_server(environment: dict[str, str], log_path: Path) -> Iterator[str]:
    """`attencraft serve` with ATTENCRAFT_QUEUE=celery; yields its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "attencraft_cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with started(command, log_path, {**environment, "ATTENCRAFT_QUEUE": "celery"}) as process:
        base_url = f"http://127.0.0.1:{port}"
        try:
            wait_for_http(f"{base_url}/healthz", timeout_s=START_TIMEOUT_S, process=process.popen)
        except RuntimeError:
            print(process.log()[-5000:])
            raise
        yield base_url


@contextmanager
def celery_worker(
    environment: dict[str, str], log_path: Path, *, queues: str, concurrency: int = 1
) -> Iterator[Process]:
    command = [
        sys.executable, "-m", "attencraft_cli.main", "worker", "--queues", queues, "--concurrency", str(concurrency)
    ]  # fmt: skip
    with started(command, log_path, environment) as process:
        poll(lambda: process.popen.poll() is not None or " ready." in process.log(), timeout_s=START_TIMEOUT_S,
             what=f"the {queues} worker to be ready")  # fmt: skip
        assert process.popen.poll() is None, process.log()[-5000:]
        yield process


@contextmanager
def redis_server(data_dir: Path, port: int) -> Iterator[Process]:
    """A redis-server that persists every write (append-only file), unlike the CI one."""
    command = [
        "redis-server", "--bind", "127.0.0.1", "--port", str(port), "--appendonly", "yes", "--appendfsync", "always",
        "--save", "", "--dir", str(data_dir),
    ]  # fmt: skip
    with started(command, data_dir / "redis.log") as process:
        client = redis.Redis(port=port)
        poll(lambda: _answers(client), timeout_s=START_TIMEOUT_S, what=f"redis on port {port}")
        yield process


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1 that answers with the scripted statuses, then 200."""

    statuses: list[int] = field(default_factory=list)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            receiver.requests.append(({name.lower(): value for name, value in self.headers.items()}, body))
            self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
