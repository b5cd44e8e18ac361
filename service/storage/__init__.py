"""Object storage: one interface, an S3 and a local-directory implementation, chosen by URL."""

import secrets
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from service.settings import Settings
from service.storage.base import (
    ObjectExists,
    ObjectMissing,
    ObjectStore,
    StorageError,
    StorageFull,
    StorageUnavailable,
    StoredObject,
)
from service.storage.local import LocalDirectoryStore
from service.storage.s3 import S3Store

__all__ = [
    "LocalDirectoryStore",
    "ObjectExists",
    "ObjectMissing",
    "ObjectStore",
    "S3Store",
    "StorageError",
    "StorageFull",
    "StorageUnavailable",
    "StoredObject",
    "create_store",
]


def _local_signing_secret(settings: Settings) -> bytes:
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    secret_file = settings.data_dir / "secret_key"
    if not secret_file.exists():
        secret_file.parent.mkdir(parents=True, exist_ok=True)
        secret_file.write_text(secrets.token_hex(32))
        secret_file.chmod(0o600)
    return secret_file.read_text().strip().encode()


def create_store(settings: Settings) -> ObjectStore:
    url = urlsplit(settings.storage_url)
    if url.scheme == "file":
        return LocalDirectoryStore(
            Path(url2pathname(url.path)),
            _local_signing_secret(settings),
            min_free_bytes=settings.storage_min_free_mb * 2**20,
        )
    if url.scheme == "s3":
        return S3Store(url.netloc, prefix=url.path, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region)
    raise ValueError(f"ATTENCRAFT_STORAGE_URL must start with file:// or s3://, got {settings.storage_url!r}")
