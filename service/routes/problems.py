"""OpenAPI descriptions of the error responses routes may return (the problem+json schema is added by
service.openapi to every error response)."""

from typing import Any

_DESCRIPTIONS = {
    400: "The body could not be parsed (malformed multipart or JSON).",
    401: "Missing, invalid or revoked API key.",
    404: "No such object for this tenant.",
    409: "The object's state does not allow this.",
    413: "An uploaded file is larger than allowed.",
    415: "An upload is not a PNG, JPEG or WebP image.",
    422: "The request is not valid; `errors` lists the fields.",
    503: "The work queue, the database or the store is not reachable (see `Retry-After`); nothing was started.",
    507: "The store is full; nothing was kept.",
}


def problem_responses(*statuses: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """``descriptions`` overrides the default text per status, e.g. ``problem_responses(503, s503="Not ready")``."""
    return {status: {"description": descriptions.get(f"s{status}", _DESCRIPTIONS[status])} for status in statuses}
