"""The object-store interface shared by the S3 and local-directory implementations."""

import hashlib
from dataclasses import dataclass
from typing import BinaryIO, Protocol

COPY_CHUNK_BYTES = 1024 * 1024


class StorageError(Exception):
    """A storage operation failed."""


class ObjectExists(StorageError):
    """The key is taken; stored objects are never overwritten."""


class ObjectMissing(StorageError):
    """No object under this key."""


class StorageUnavailable(StorageError):
    """The store cannot be reached or written."""


class StorageFull(StorageError):
    """The store has no room left (ENOSPC, a quota, or less free space than the configured floor)."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    sha256: str
    content_type: str


class ObjectStore(Protocol):
    def put(self, key: str, source: BinaryIO, *, content_type: str) -> StoredObject:
        """Stream ``source`` into a new object; raise ObjectExists rather than overwrite."""
        ...

    def read_bytes(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with ``prefix``; return how many."""
        ...

    def signed_url(self, key: str, *, expires_in: int) -> str:
        """A time-limited download URL: absolute, or relative to the API root."""
        ...

    def check(self) -> None:
        """Raise StorageUnavailable when the store cannot serve requests."""
        ...


def copy_and_hash(source: BinaryIO, destination: BinaryIO) -> tuple[int, str]:
    """Copy in chunks; return the byte count and the SHA-256 hex digest of what was copied."""
    digest = hashlib.sha256()
    size = 0
    while chunk := source.read(COPY_CHUNK_BYTES):
        digest.update(chunk)
        destination.write(chunk)
        size += len(chunk)
    return size, digest.hexdigest()
