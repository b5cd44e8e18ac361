"""Both object stores: streamed, content-hashed, never overwritten, signed URLs that download."""

import hashlib
import io
import os
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from service.app import create_app
from service.queue import RecordingJobQueue
from service.settings import Settings
from service.storage import (
    LocalDirectoryStore,
    ObjectExists,
    ObjectMissing,
    ObjectStore,
    S3Store,
    StorageUnavailable,
    create_store,
)
from tests.service.infrastructure import S3Server, fill, own_s3_store, small_tmpfs
from tests.service.job_requests import image_bytes, post_job


def test_put_streams_and_hashes(store: ObjectStore) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)  # several copy chunks

    stored = store.put("jobs/1/artifacts/weights.safetensors", io.BytesIO(payload), content_type="application/x")

    assert stored.size == len(payload)
    assert stored.sha256 == hashlib.sha256(payload).hexdigest()
    assert store.read_bytes("jobs/1/artifacts/weights.safetensors") == payload
    assert store.exists("jobs/1/artifacts/weights.safetensors")
    assert not store.exists("jobs/1/artifacts/missing.bin")


def test_a_stored_object_is_never_overwritten(store: ObjectStore) -> None:
    store.put("jobs/2/metadata.json", io.BytesIO(b"first"), content_type="application/json")

    with pytest.raises(ObjectExists):
        store.put("jobs/2/metadata.json", io.BytesIO(b"second"), content_type="application/json")
    assert store.read_bytes("jobs/2/metadata.json") == b"first"


def test_missing_object(store: ObjectStore) -> None:
    with pytest.raises(ObjectMissing):
        store.read_bytes("jobs/nothing/here.png")


def test_delete_prefix_removes_only_that_prefix(store: ObjectStore) -> None:
    for key in ("jobs/3/masks/0.png", "jobs/3/masks/1.png", "jobs/3/input/image.png", "jobs/30/masks/0.png"):
        store.put(key, io.BytesIO(b"x"), content_type="image/png")

    assert store.delete_prefix("jobs/3/masks/") == 2
    assert not store.exists("jobs/3/masks/0.png")
    assert store.exists("jobs/3/input/image.png")
    assert store.exists("jobs/30/masks/0.png")


def test_signed_url_downloads_from_s3(s3_store: S3Store) -> None:
    s3_store.put("jobs/4/overlay.png", io.BytesIO(b"overlay-bytes"), content_type="image/png")

    url = s3_store.signed_url("jobs/4/overlay.png", expires_in=60)
    response = httpx.get(url)

    assert response.status_code == 200
    assert response.content == b"overlay-bytes"
    assert "X-Amz-Expires=60" in url


def test_s3_refuses_forged_signatures(s3_store: S3Store) -> None:
    s3_store.put("jobs/5/weights.bin", io.BytesIO(b"secret"), content_type="application/octet-stream")
    url = s3_store.signed_url("jobs/5/weights.bin", expires_in=60)

    forged = url.replace("X-Amz-Signature=", "X-Amz-Signature=00")
    assert httpx.get(forged).status_code == 403


def test_local_signed_urls_verify(local_store: LocalDirectoryStore) -> None:
    url = local_store.signed_url("jobs/6/mask.png", expires_in=60)
    query = dict(part.split("=") for part in url.split("?")[1].split("&"))

    assert url.startswith("files/jobs/6/mask.png?")
    assert local_store.verify("jobs/6/mask.png", expires=int(query["expires"]), signature=query["signature"])
    assert not local_store.verify("jobs/7/mask.png", expires=int(query["expires"]), signature=query["signature"])
    assert not local_store.verify("jobs/6/mask.png", expires=int(query["expires"]) + 1, signature=query["signature"])


def test_local_store_keeps_keys_inside_its_root(local_store: LocalDirectoryStore) -> None:
    with pytest.raises(ObjectMissing):
        local_store.put("../escape.txt", io.BytesIO(b"x"), content_type="text/plain")


def test_check_reports_a_missing_bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    missing = S3Store("no-such-bucket-here", endpoint_url=s3_server.endpoint_url, region="us-east-1")

    with pytest.raises(StorageUnavailable):
        missing.check()


def test_create_store_from_settings(tmp_path, s3_bucket: str, s3_server: S3Server) -> None:
    local = create_store(Settings(data_dir=tmp_path, storage_url=(tmp_path / "objects").as_uri()))
    s3 = create_store(Settings(storage_url=f"s3://{s3_bucket}/tenant-data", s3_endpoint_url=s3_server.endpoint_url))

    assert isinstance(local, LocalDirectoryStore) and local.root == tmp_path / "objects"
    assert isinstance(s3, S3Store) and (s3.bucket, s3.prefix) == (s3_bucket, "tenant-data/")
    with pytest.raises(ValueError, match="file:// or s3://"):
        create_store(Settings(storage_url="ftp://elsewhere"))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "disk", size_kib=512) as mount_point:
        yield mount_point


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_a_full_disk_is_a_507_that_keeps_nothing_and_readiness_says_so(
    small_disk: Path, settings: Settings, engine: Engine, new_api_key: Callable[[], str]
) -> None:
    store = LocalDirectoryStore(small_disk / "store", secrets.token_bytes(32), min_free_bytes=64 * 1024)
    app = create_app(settings, queue=RecordingJobQueue(), store=store, engine=engine)
    with TestClient(app, headers={"Authorization": f"Bearer {new_api_key()}"}) as client:
        assert client.get("/readyz").json()["checks"]["storage"] == "ok"
        fill(small_disk)
        refused = post_job(client, image=image_bytes(size=(256, 256)))
        readiness = client.get("/readyz")
    assert refused.status_code == 507, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "storage_full" and str(small_disk) not in refused.text
    assert [path.name for path in small_disk.rglob(".upload-*")] == []
    assert readiness.status_code == 503
    assert readiness.json()["errors"] == [
        {"field": "storage", "message": "full: 0.0 MiB free, below the floor of 0.1 MiB"}
    ]


@pytest.fixture
def outage_s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[S3Server, S3Store]]:
    with own_s3_store(tmp_path / "seaweedfs", monkeypatch) as server_and_store:
        yield server_and_store


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_an_s3_store_that_goes_away_is_a_503_to_retry_and_no_job_is_half_made(
    outage_s3: tuple[S3Server, S3Store], settings: Settings, engine: Engine, new_api_key: Callable[[], str]
) -> None:
    server, store = outage_s3
    app = create_app(settings, queue=RecordingJobQueue(), store=store, engine=engine)
    with TestClient(app, headers={"Authorization": f"Bearer {new_api_key()}"}) as client:
        accepted = post_job(client).json()
        server.stop()
        started = time.monotonic()
        refused = post_job(client)
        waited_s = time.monotonic() - started
        jobs = client.get("/jobs").json()["items"]
        readiness = client.get("/readyz")
    assert refused.status_code == 503, refused.text
    assert refused.headers["content-type"] == "application/problem+json" and refused.headers["Retry-After"]
    assert refused.json()["code"] == "storage_unavailable" and "try again" in refused.json()["detail"]
    assert waited_s < 30
    assert [job["id"] for job in jobs] == [accepted["id"]]  # the accepted job is kept, the refused one never made
    assert readiness.status_code == 503
    assert [error["field"] for error in readiness.json()["errors"]] == ["storage"]
