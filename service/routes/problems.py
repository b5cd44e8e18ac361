"""OpenAPI descriptions of the problem+json error responses routes may return."""

from typing import Any

from attencraft_contract.models import Problem
from service.errors import PROBLEM_CONTENT_TYPE

_DESCRIPTIONS = {
    400: "The body could not be parsed (malformed multipart or JSON).",
    401: "Missing or invalid API key.",
    404: "No such object for this tenant.",
    409: "The object's state does not allow this.",
    413: "An uploaded file is larger than allowed.",
    415: "An upload is not a PNG, JPEG or WebP image.",
    422: "The request is not valid; `errors` lists the fields.",
    503: "The work queue is not reachable; the request was recorded as failed, nothing was started.",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"model": Problem, "description": _DESCRIPTIONS[status], "content": {PROBLEM_CONTENT_TYPE: {}}}
        for status in statuses
    }
