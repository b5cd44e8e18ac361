"""An S3 object store on boto3 (AWS, MinIO, SeaweedFS) with conditional writes and presigned URLs."""

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from service.storage.base import (
    ObjectExists,
    ObjectMissing,
    StorageFull,
    StorageUnavailable,
    StoredObject,
    copy_and_hash,
)

SPOOL_IN_MEMORY_BYTES = 8 * 1024 * 1024


class S3Store:
    def __init__(self, bucket: str, *, prefix: str = "", endpoint_url: str | None = None, region: str) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._client: Any = boto3.session.Session().client(  # credentials as they are now, not as first cached
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path" if endpoint_url else "auto"},
                retries={"mode": "standard", "max_attempts": 3},
                connect_timeout=5,
                read_timeout=60,
            ),
        )

    def put(self, key: str, source: BinaryIO, *, content_type: str) -> StoredObject:
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES) as spooled:
            size, sha256 = copy_and_hash(source, spooled)
            spooled.seek(0)
            try:
                self._client.put_object(
                    Bucket=self.bucket,
                    Key=self.prefix + key,
                    Body=spooled,
                    ContentType=content_type,
                    Metadata={"sha256": sha256},
                    IfNoneMatch="*",
                )
            except ClientError as exc:
                code = exc.response["Error"]["Code"]
                if code in ("PreconditionFailed", "ConditionalRequestConflict"):
                    raise ObjectExists(key) from exc
                if code in ("XMinioStorageFull", "QuotaExceeded", "EntityTooLarge"):
                    raise StorageFull("The store has no space left.") from exc
                raise StorageUnavailable(f"The store refused the write ({code}).") from exc
            except BotoCoreError as exc:
                raise StorageUnavailable("The store cannot be reached.") from exc
        return StoredObject(key=key, size=size, sha256=sha256, content_type=content_type)

    def read_bytes(self, key: str) -> bytes:
        try:
            with _reachable():
                response = self._client.get_object(Bucket=self.bucket, Key=self.prefix + key)
                return response["Body"].read()
        except ObjectMissing as exc:
            raise ObjectMissing(key) from exc

    def exists(self, key: str) -> bool:
        try:
            with _reachable():
                self._client.head_object(Bucket=self.bucket, Key=self.prefix + key)
        except ObjectMissing:
            return False
        return True

    def delete_prefix(self, prefix: str) -> int:
        deleted = 0
        with _reachable():
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if keys:
                    self._client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
                    deleted += len(keys)
        return deleted

    def signed_url(self, key: str, *, expires_in: int) -> str:
        return self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self.prefix + key}, ExpiresIn=expires_in
        )

    def check(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            raise StorageUnavailable(f"bucket {self.bucket!r}: {exc}") from exc


@contextmanager
def _reachable() -> Iterator[None]:
    """A missing object is ObjectMissing; a store that cannot be reached, or fails, is StorageUnavailable (the API's
    503, a job's storage_unavailable), never a raw botocore error."""
    try:
        yield
    except ClientError as exc:
        code = exc.response["Error"]["Code"]
        if code in ("NoSuchKey", "404", "NotFound"):
            raise ObjectMissing(code) from exc
        raise StorageUnavailable(f"The store refused the request ({code}).") from exc
    except BotoCoreError as exc:
        raise StorageUnavailable("The store cannot be reached.") from exc
