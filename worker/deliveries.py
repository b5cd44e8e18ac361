"""Webhook delivery attempts: sign, POST, log the attempt, then schedule the next one or end the delivery.

Attempts are scheduled in the database (``next_attempt_at``), not as delayed broker messages: a sweep hands due
deliveries to the senders (Celery tasks on the ``webhooks`` queue, or a thread pool in the embedded mode). Delayed
Redis messages live in one worker's memory and are redelivered after the visibility timeout; rows do neither.
"""

import json
import logging
import time
from datetime import timedelta

import httpx
from sqlalchemy.orm import Session, sessionmaker

from service import repository
from service.models import DeliveryStatus, WebhookDelivery, utc_now
from service.settings import Settings
from service.webhooks import WebhookHostUnresolved, WebhookTargetRefused, check_target, retry_delay, signed_headers

logger = logging.getLogger(__name__)

GONE = 410


def _post(delivery: WebhookDelivery, secret: str, settings: Settings) -> tuple[int | None, str | None, bool]:
    """(status code, error, give up): one signed POST; redirects are not followed (a 3xx is retried)."""
    body = json.dumps(delivery.payload, separators=(",", ":")).encode()
    headers = signed_headers(secret, delivery.id, int(time.time()), body)
    try:
        target = check_target(delivery.url, settings.webhook_policy)
        with httpx.Client(timeout=settings.webhook_timeout_seconds) as http:
            response = http.post(
                target.url,
                content=body,
                headers={**headers, "host": target.host},
                extensions={"sni_hostname": target.server_name},
            )
    except WebhookHostUnresolved as error:
        return None, str(error), False
    except WebhookTargetRefused as error:
        return None, str(error), True
    except httpx.HTTPError as error:
        return None, f"{type(error).__name__}: {error}".rstrip(": "), False
    return response.status_code, None, response.status_code == GONE


def deliver(sessions: sessionmaker[Session], settings: Settings, delivery_id: str) -> None:
    """Make the next attempt of a pending delivery; a delivery that already ended is left alone."""
    with sessions() as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        if delivery is None or delivery.status != DeliveryStatus.PENDING:
            return
        secret = repository.webhook_secret(session, delivery.tenant_id)
        session.commit()
    status_code, error, give_up = _post(delivery, secret, settings)
    attempt = len(delivery.attempt_log) + 1
    delay = None if give_up else retry_delay(attempt, scale=settings.webhook_retry_scale)
    if status_code is not None and 200 <= status_code < 300:
        status, next_attempt_at = DeliveryStatus.DELIVERED, None
    elif delay is None:
        status, next_attempt_at = DeliveryStatus.FAILED, None
    else:
        status, next_attempt_at = DeliveryStatus.PENDING, utc_now() + timedelta(seconds=delay)
    entry = {"at": utc_now().isoformat(), "status_code": status_code, "error": error}
    with sessions() as session:
        repository.record_delivery_attempt(session, delivery, entry, status, next_attempt_at)
        session.commit()
    logger.info("webhook %s attempt %d: %s -> %s", delivery_id, attempt, status_code or error, status.value)
