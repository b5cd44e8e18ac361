"""A local-directory object store whose download URLs are HMAC-signed routes of the API itself."""

import errno
import hashlib
import hmac
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlencode

from service.storage.base import (
    ObjectExists,
    ObjectMissing,
    StorageError,
    StorageFull,
    StorageUnavailable,
    StoredObject,
    copy_and_hash,
)

FILES_ROUTE_PREFIX = "files/"
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


def _write_error(error: OSError) -> StorageError:
    """A failed write as the store's error, without the server's paths."""
    if error.errno in NO_SPACE:
        return StorageFull("The store has no space left.")
    return StorageUnavailable(f"The store cannot be written: {error.strerror or type(error).__name__}.")


class LocalDirectoryStore:
    def __init__(self, root: Path, secret: bytes, *, min_free_bytes: int = 0) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._secret = secret
        self.min_free_bytes = min_free_bytes

    def path_for(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            raise ObjectMissing(key)
        return path

    def put(self, key: str, source: BinaryIO, *, content_type: str) -> StoredObject:
        final_path = self.path_for(key)
        try:
            final_path.parent.mkdir(parents=True, exist_ok=True)
            descriptor, scratch_path = tempfile.mkstemp(dir=final_path.parent, prefix=".upload-")
        except OSError as error:
            raise _write_error(error) from error
        try:
            with open(descriptor, "wb") as scratch:  # closing flushes: a full disk fails here, before the link
                size, sha256 = copy_and_hash(source, scratch)
            os.link(scratch_path, final_path)  # atomic and refuses an existing name
        except FileExistsError as error:
            raise ObjectExists(key) from error
        except OSError as error:
            raise _write_error(error) from error
        finally:
            os.unlink(scratch_path)  # a failed write leaves nothing behind
        return StoredObject(key=key, size=size, sha256=sha256, content_type=content_type)

    def read_bytes(self, key: str) -> bytes:
        try:
            return self.path_for(key).read_bytes()
        except FileNotFoundError as exc:
            raise ObjectMissing(key) from exc

    def exists(self, key: str) -> bool:
        return self.path_for(key).is_file()

    def delete_prefix(self, prefix: str) -> int:
        deleted = 0
        for path in sorted(self.root.rglob("*")):
            if path.is_file() and path.relative_to(self.root).as_posix().startswith(prefix):
                path.unlink()
                deleted += 1
        return deleted

    def signed_url(self, key: str, *, expires_in: int) -> str:
        expires = int(time.time()) + expires_in
        query = urlencode({"expires": expires, "signature": self._signature(key, expires)})
        return f"{FILES_ROUTE_PREFIX}{quote(key)}?{query}"

    def verify(self, key: str, *, expires: int, signature: str) -> bool:
        return expires >= time.time() and hmac.compare_digest(signature, self._signature(key, expires))

    def check(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise StorageUnavailable(f"{self.root} is not writable")
        free = shutil.disk_usage(self.root).free
        if free < self.min_free_bytes:
            raise StorageFull(f"{free / 2**20:.1f} MiB free, below the floor of {self.min_free_bytes / 2**20:.1f} MiB")

    def _signature(self, key: str, expires: int) -> str:
        return hmac.new(self._secret, f"{key}\n{expires}".encode(), hashlib.sha256).hexdigest()
