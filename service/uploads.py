"""The one upload rule only the service can apply: where a webhook may point (it resolves the host)."""

from attencraft_contract.errors import InputError
from service.webhooks import TargetPolicy, WebhookHostUnresolved, WebhookTargetRefused, check_target


def check_webhook_target(url: str, policy: TargetPolicy) -> None:
    """Refuse a URL that resolves to an address webhooks must not reach; an unresolvable host may resolve later."""
    try:
        check_target(url, policy)
    except WebhookHostUnresolved:
        return
    except WebhookTargetRefused as exc:
        raise InputError(f"webhook_url is refused: {exc}", code="webhook_target_refused", field="webhook_url") from exc
