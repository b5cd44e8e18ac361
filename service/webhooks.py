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
from urllib.parse import SplitResult, urlsplit, urlunsplit

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


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT; cloud metadata at 100.100.100.200
NAT64_PREFIXES = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries: IPv4-mapped, 6to4, Teredo (server and client), NAT64."""
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address.teredo is not None:
        return list(address.teredo)
    if any(address in prefix for prefix in NAT64_PREFIXES):
        return [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
    return []


def _refused_one(address: IPAddress, policy: TargetPolicy) -> str | None:
    if address.is_loopback:
        return None if policy.allow_loopback else "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast or address.is_unspecified or address.is_reserved:
        return "a reserved address"
    if address.is_private or address in SHARED_ADDRESS_SPACE:
        return None if policy.allow_private else "a private address"
    site_local = isinstance(address, ipaddress.IPv6Address) and address.is_site_local  # fec0::/10, deprecated
    return None if address.is_global and not site_local else "an address that is not globally routable"


def _refused(address: IPAddress, policy: TargetPolicy) -> str | None:
    """Why a webhook must not go to ``address``, judged by the IPv4 address it embeds where it embeds one."""
    judged = _embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else []
    for candidate in judged or [address]:
        reason = _refused_one(candidate, policy)
        if reason:
            return reason if candidate == address else f"{reason} ({candidate} inside {address})"
    return None


@dataclass(frozen=True)
class CheckedTarget:
    """Where a delivery connects: the address that was checked, never a second resolution of the host (a DNS
    answer that changed in between could otherwise point the request at an internal address)."""

    url: str  # the URL with the checked address in place of the host name
    host: str  # the Host header: the name and port of the original URL
    server_name: str  # the TLS server name (SNI) that the certificate is verified against


def _with_address(parts: SplitResult, address: IPAddress) -> str:
    host = f"[{address}]" if address.version == 6 else str(address)
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def check_target(url: str, policy: TargetPolicy) -> CheckedTarget:
    """Refuse URLs whose host resolves to an address a webhook must not reach (checked again at each delivery);
    otherwise the target pinned to the first checked address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookTargetRefused("A webhook URL must be an absolute http(s) URL.")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise WebhookHostUnresolved(f"The webhook host {parts.hostname!r} does not resolve.") from error
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    for address in addresses:
        reason = _refused(address, policy)
        if reason:
            raise WebhookTargetRefused(f"The webhook host {parts.hostname!r} resolves to {reason} ({address}).")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return CheckedTarget(
        url=_with_address(parts, addresses[0]),
        host=f"{host}:{parts.port}" if parts.port else host,
        server_name=parts.hostname,
    )
