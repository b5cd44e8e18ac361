"""API keys: random bearer tokens of which only a SHA-256 hash is stored; revoked keys stop working at once."""

import hashlib
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.errors import NotFound
from service.models import ApiKey, Tenant, utc_now

KEY_PREFIX = "ak_"
SHOWN_PREFIX_CHARS = 10  # "ak_" and 7 characters: enough to tell keys apart in a listing, useless to an attacker


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class TenantRef:
    """The tenant of a request, and the id of the API key it came with."""

    id: str
    name: str
    key_id: str


@dataclass(frozen=True)
class KeyInfo:
    """What `attencraft keys list` shows of a key: never the key itself."""

    id: str
    tenant: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


def look_up_tenant(session: Session, key: str) -> TenantRef | None:
    """The tenant of a key that exists and is not revoked."""
    api_key = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_api_key(key), ApiKey.revoked_at.is_(None)))
    return TenantRef(id=api_key.tenant.id, name=api_key.tenant.name, key_id=api_key.id) if api_key is not None else None


def active_key_ids(session: Session, key_ids: Collection[str]) -> set[str]:
    """Those of the keys that still exist unrevoked: what long-lived responses (event streams) check as they go."""
    return set(session.scalars(select(ApiKey.id).where(ApiKey.id.in_(key_ids), ApiKey.revoked_at.is_(None))))


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
        session.add(ApiKey(tenant_id=tenant.id, key_hash=key_hash, key_prefix=key[:SHOWN_PREFIX_CHARS]))
        session.flush()


def create_api_key(session: Session, tenant_name: str) -> str:
    """Create a new key for the tenant (created when missing) and return it; it is never shown again."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    register_api_key(session, get_or_create_tenant(session, tenant_name), key)
    return key


def has_active_key(session: Session, tenant_name: str) -> bool:
    query = select(ApiKey.id).join(Tenant).where(Tenant.name == tenant_name, ApiKey.revoked_at.is_(None))
    return session.scalar(query.limit(1)) is not None


def list_api_keys(session: Session, tenant_name: str | None = None) -> list[KeyInfo]:
    query = select(ApiKey).join(Tenant).order_by(Tenant.name, ApiKey.created_at)
    if tenant_name is not None:
        query = query.where(Tenant.name == tenant_name)
    return [
        KeyInfo(key.id, key.tenant.name, key.key_prefix, key.created_at, key.revoked_at)
        for key in session.scalars(query)
    ]


def revoke_api_key(session: Session, key_id_or_prefix: str) -> KeyInfo:
    """Revoke the key with this id, the one key whose shown prefix this is, or the key itself; requests with it
    fail from now on."""
    selected = (
        (ApiKey.id == key_id_or_prefix)
        | (ApiKey.key_prefix == key_id_or_prefix)
        | (ApiKey.key_hash == hash_api_key(key_id_or_prefix))
    )
    matches = list(session.scalars(select(ApiKey).where(selected)))
    if len(matches) != 1:
        reason = "no key has" if not matches else f"{len(matches)} keys share"
        raise NotFound(f"{reason} the id or prefix {key_id_or_prefix!r}; see `attencraft keys list`.")
    key = matches[0]
    key.revoked_at = key.revoked_at or utc_now()
    session.flush()
    return KeyInfo(key.id, key.tenant.name, key.key_prefix, key.created_at, key.revoked_at)
