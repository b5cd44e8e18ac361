"""API keys: random bearer tokens of which only a SHA-256 hash is stored."""

import hashlib
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.models import ApiKey, Tenant

KEY_PREFIX = "ak_"


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class TenantRef:
    id: str
    name: str


class ApiKeyCache:
    """Recently verified keys, so most requests skip the key lookup; an entry lives ``ttl_s`` seconds."""

    def __init__(self, ttl_s: float, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[str, tuple[TenantRef, float]] = {}

    def cached_tenant(self, key: str) -> TenantRef | None:
        """The key's tenant if verified within the last ``ttl_s`` seconds; no I/O."""
        cached = self._entries.get(hash_api_key(key))
        return cached[0] if cached is not None and cached[1] > time.monotonic() else None

    def look_up_tenant(self, session: Session, key: str) -> TenantRef | None:
        """Verify the key against the database and remember the answer when it is valid."""
        key_hash = hash_api_key(key)
        api_key = session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))
        if api_key is None:
            return None
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        tenant = TenantRef(id=api_key.tenant.id, name=api_key.tenant.name)
        self._entries[key_hash] = (tenant, time.monotonic() + self.ttl_s)
        return tenant


def get_or_create_tenant(session: Session, name: str) -> Tenant:
    tenant = session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None:
        tenant = Tenant(name=name)
        session.add(tenant)
        session.flush()
    return tenant


def register_api_key(session: Session, tenant: Tenant, key: str) -> None:
    """Store the hash of ``key`` for ``tenant`` unless it is already registered (to any tenant)."""
    key_hash = hash_api_key(key)
    if session.scalar(select(ApiKey.id).where(ApiKey.key_hash == key_hash)) is None:
        session.add(ApiKey(tenant_id=tenant.id, key_hash=key_hash, key_prefix=key[:10]))
        session.flush()


def create_api_key(session: Session, tenant_name: str) -> str:
    """Create a new key for the tenant (created when missing) and return it; it is never shown again."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    register_api_key(session, get_or_create_tenant(session, tenant_name), key)
    return key
