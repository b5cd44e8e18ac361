"""``Idempotency-Key`` on the creating requests (POST /jobs, POST /generate), as Stripe and the IETF draft have it.

A request with a key the tenant used within the last 24 h gets the resource the first request created, when it is
the same request (same operation, same content); under another request the key is a 422. The key is stored in the
transaction that creates the resource, so the resource and its key exist together or not at all.
"""

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO, Annotated, Any

from fastapi import Header
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.errors import ValidationProblem
from service.models import IdempotencyKey, utc_now

KEY_LIFETIME = timedelta(hours=24)
MAX_KEY_CHARS = 255
REPLAYED_HEADER = "Idempotent-Replayed"

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_KEY_CHARS,
        pattern=r"^[\x21-\x7e]+$",
        description="Optional: a unique value per intended operation (a UUID, say). A retry with the same key and "
        "request within 24 h returns what the first request created instead of creating it again "
        f"(with `{REPLAYED_HEADER}: true`); the same key with a different request is a 422.",
    ),
]


def stream_sha256(stream: IO[bytes]) -> str:
    """The SHA-256 of a whole upload, left rewound for the next reader."""
    stream.seek(0)
    digest = hashlib.file_digest(stream, "sha256").hexdigest()
    stream.seek(0)
    return digest


@dataclass(frozen=True)
class IdempotentRequest:
    """A creating request as its key remembers it; without a key, every method is a no-op."""

    tenant_id: str
    key: str | None
    request_sha256: str

    @classmethod
    def of(cls, tenant_id: str, key: str | None, operation: str, content: Mapping[str, Any]) -> "IdempotentRequest":
        """``content`` is the request's validated meaning (names as compared, uploads by their hash)."""
        canonical = json.dumps({"operation": operation, "content": content}, sort_keys=True, separators=(",", ":"))
        return cls(tenant_id, key, hashlib.sha256(canonical.encode()).hexdigest())

    def earlier_resource(self, session: Session) -> str | None:
        """The id of what the first request with this key created; None for a new (or expired) key, or none."""
        if self.key is None:
            return None
        earlier = session.scalar(select(IdempotencyKey).where(*self._row()))
        if earlier is None:
            return None
        if earlier.created_at < utc_now() - KEY_LIFETIME:
            session.delete(earlier)
            session.flush()
            return None
        if earlier.request_sha256 != self.request_sha256:
            raise ValidationProblem(
                f"The Idempotency-Key {self.key!r} came with a different request less than 24 hours ago; send a new "
                "key for a new request, or repeat the first request exactly to get what it created.",
                code="idempotency_key_reused",
                errors=[{"field": "Idempotency-Key", "message": "already used with a different request"}],
            )
        return earlier.resource_id

    def remember(self, session: Session, resource_id: str) -> None:
        """Store the key with the resource it created; it is written when the resource is committed."""
        if self.key is not None:
            session.add(
                IdempotencyKey(
                    tenant_id=self.tenant_id, key=self.key, request_sha256=self.request_sha256, resource_id=resource_id
                )
            )

    def forget(self, session: Session) -> None:
        """Drop the key, for a request whose resource was not started: a retry with it starts one."""
        if self.key is not None:
            session.execute(delete(IdempotencyKey).where(*self._row()))

    def _row(self) -> tuple[Any, ...]:
        return IdempotencyKey.tenant_id == self.tenant_id, IdempotencyKey.key == self.key


def commit_once(session: Session, request: IdempotentRequest, discard: Callable[[], None]) -> str | None:
    """Commit the new resource; None when it was. When a concurrent request with the same key committed first, roll
    back, ``discard`` what this request stored outside the database, and return the resource that request created."""
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        discard()
        earlier = request.earlier_resource(session)
        if earlier is None:
            raise
        return earlier
    return None


def purge_expired_keys(session: Session, now: datetime) -> int:
    """Delete keys older than their lifetime; how many."""
    result = session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < now - KEY_LIFETIME))
    return result.rowcount
