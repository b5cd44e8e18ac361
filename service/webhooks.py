"""Standard Webhooks (https://www.standardwebhooks.com): signing, target checks and the retry schedule.

A delivery is signed over "id.timestamp.body" with HMAC-SHA256 and a `whsec_` secret; the same webhook-id is
sent on every retry so receivers can deduplicate.
"""

import base64
import hashlib
import hmac
import ipaddress
import random
import secrets
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

SECRET_PREFIX = "whsec_"
# Svix's schedule, the one Standard Webhooks describes: retries over about a day.
RETRY_DELAYS_SECONDS = (5, 300, 1800, 7200, 18000, 36000, 36000)
JITTER = 0.2


class WebhookTargetRefused(ValueError):
    """The URL points somewhere a webhook must not go (a private, loopback or link-local address)."""


class WebhookHostUnresolved(WebhookTargetRefused):
    """The host does not resolve now: maybe a passing DNS failure, so submissions accept it and deliveries retry."""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def _secret_bytes(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(_secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, webhook_id, timestamp, body),
    }


def retry_delay(attempt: int, rng: random.Random | None = None, scale: float = 1.0) -> float | None:
    """Seconds to wait after failed attempt `attempt` (1-based), with ±20 % jitter; None once retries run out."""
    if attempt > len(RETRY_DELAYS_SECONDS):
        return None
    base = RETRY_DELAYS_SECONDS[attempt - 1] * scale
    return base * (1 + (rng or random).uniform(-JITTER, JITTER))


@dataclass(frozen=True)
class TargetPolicy:
    allow_private: bool = False
    allow_loopback: bool = False


def _refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address, policy: TargetPolicy) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return None if policy.allow_loopback else "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast or address.is_unspecified or address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return None if policy.allow_private else "a private address"
    return None


def check_target(url: str, policy: TargetPolicy) -> None:
    """Refuse URLs whose host resolves to an address a webhook must not reach (checked again at each delivery)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookTargetRefused("A webhook URL must be an absolute http(s) URL.")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise WebhookHostUnresolved(f"The webhook host {parts.hostname!r} does not resolve.") from error
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        reason = _refused(address, policy)
        if reason:
            raise WebhookTargetRefused(f"The webhook host {parts.hostname!r} resolves to {reason} ({address}).")
