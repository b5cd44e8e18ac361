"""One typed error tree, rendered as RFC 9457 ``application/problem+json`` in one place."""

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.routing import Match

from attencraft_contract.errors import InputError, InputTooLarge, UnsupportedInput
from attencraft_contract.models import TEXT_PATTERN
from service.db import DatabaseFileGone
from service.storage.base import StorageFull, StorageUnavailable

PROBLEM_CONTENT_TYPE = "application/problem+json"

logger = logging.getLogger(__name__)


class ServiceError(Exception):
    """Base of every error the API reports to a client."""

    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init__(self, detail: str, *, code: str | None = None, errors: Sequence[dict[str, Any]] = ()) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code or self.code
        self.errors = list(errors)


class ValidationProblem(ServiceError):
    status = 422
    code = "invalid_request"
    title = "The request is not valid"


class Unauthorized(ServiceError):
    status = 401
    code = "unauthorized"
    title = "Missing or invalid API key"


class NotFound(ServiceError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(ServiceError):
    status = 409
    code = "conflict"
    title = "Conflict with the current state"


class PayloadTooLarge(ServiceError):
    status = 413
    code = "payload_too_large"
    title = "Upload too large"


class UnsupportedMediaType(ServiceError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class ServiceUnavailable(ServiceError):
    status = 503
    code = "not_ready"
    title = "Service not ready"
    retry_after_s = 5


class InsufficientStorage(ServiceError):
    status = 507
    code = "storage_full"
    title = "Insufficient storage"


QUEUE_UNAVAILABLE = "queue_unavailable"
QUEUE_UNAVAILABLE_MESSAGE = "The work queue is not reachable right now, so nothing was started. Try again shortly."


class InternalError(ServiceError):
    status = 500
    code = "internal_error"
    title = "Internal error"


def problem_response(
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    errors: Sequence[dict[str, Any]] = (),
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:attencraft:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors:
        body["errors"] = list(errors)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_CONTENT_TYPE)


def _service_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    headers = (
        {"WWW-Authenticate": "Bearer"}
        if isinstance(exc, Unauthorized)
        else {"Retry-After": str(exc.retry_after_s)}
        if isinstance(exc, ServiceUnavailable)
        else None
    )
    return problem_response(
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        errors=exc.errors,
        headers=headers,
    )


def _input_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """A broken contract rule: 413 for a size limit, 415 for a file kind, 422 otherwise; the rule's sentence."""
    assert isinstance(exc, InputError)
    kind: type[ServiceError] = (
        PayloadTooLarge
        if isinstance(exc, InputTooLarge)
        else UnsupportedMediaType
        if isinstance(exc, UnsupportedInput)
        else ValidationProblem
    )
    return _service_error_handler(request, kind(exc.message, code=exc.code, errors=exc.errors))


def _field_path(location: Sequence[int | str]) -> str:
    parts = [str(part) for part in location if part not in ("body", "query", "path", "header")]
    return ".".join(parts) or "request"


def _readable_message(message: str) -> str:
    if "Expected UploadFile" in message:
        return "expected an uploaded file (a multipart part with a filename), got a text field"
    if TEXT_PATTERN in message:
        return "must not contain control characters (tabs and line breaks are fine)"
    return message


def _request_validation_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": _field_path(error["loc"]), "message": _readable_message(error["msg"])} for error in exc.errors()
    ]
    summary = "; ".join(f"{error['field']}: {error['message']}" for error in errors)
    return problem_response(
        status=ValidationProblem.status,
        code=ValidationProblem.code,
        title=ValidationProblem.title,
        detail=f"The request is not valid: {summary}.",
        errors=errors,
    )


def _allowed_methods(request: Request) -> str:
    """Every method of every route on this path (Starlette lists only the first route's)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE and isinstance(route, APIRoute):
            methods |= route.methods
    return ", ".join(sorted(methods))


def _http_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if isinstance(exc.__cause__, ServiceError):  # FastAPI wraps errors raised while it reads the body
        return _service_error_handler(request, exc.__cause__)
    phrase = HTTPStatus(exc.status_code).phrase
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != phrase else _HTTP_DETAILS.get(exc.status_code)
    headers = dict(exc.headers or {})
    if exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
        headers["Allow"] = _allowed_methods(request)
    return problem_response(
        status=exc.status_code,
        code=phrase.lower().replace(" ", "_").replace("-", "_"),
        title=phrase,
        detail=detail or phrase,
        headers=headers or None,
    )


_HTTP_DETAILS = {
    404: "There is no such resource. See /docs for the API.",
    405: "This method is not allowed on this resource. See /docs for the API.",
    413: "The request body is larger than this service accepts.",
}


class DatabaseBusy(ServiceUnavailable):
    code = "database_busy"
    retry_after_s = 1


def _database_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """A lost database connection, or no free pooled connection within the pool timeout: a 503 to retry."""
    if isinstance(exc, PoolTimeout):
        logger.warning("no database connection free within the pool timeout")
        error: ServiceError = DatabaseBusy("The service is busy; try again in a moment.")
    else:
        logger.error("database unavailable", exc_info=exc)
        error = ServiceUnavailable("The database is unavailable; try again shortly.", code="database_down")
    return _service_error_handler(request, error)


def _storage_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """The store is full (507) or cannot be reached (503): nothing was kept, the client may try again later."""
    logger.warning("storage: %s", exc)
    error: ServiceError = (
        InsufficientStorage("The store is full, so nothing was kept; try again once space has been freed.")
        if isinstance(exc, StorageFull)
        else ServiceUnavailable("The store cannot be reached right now; try again shortly.", code="storage_unavailable")
    )
    return _service_error_handler(request, error)


def _unexpected_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    """Last resort: a problem+json 500 without internals."""
    logger.error("unhandled error", exc_info=exc)
    error = InternalError("Something went wrong on our side; the error was logged.")
    return problem_response(status=error.status, code=error.code, title=error.title, detail=error.detail)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Exception, _unexpected_error_handler)
    app.add_exception_handler(ServiceError, _service_error_handler)
    app.add_exception_handler(OperationalError, _database_error_handler)
    app.add_exception_handler(PoolTimeout, _database_error_handler)
    app.add_exception_handler(DatabaseFileGone, _database_error_handler)
    app.add_exception_handler(StorageFull, _storage_error_handler)
    app.add_exception_handler(StorageUnavailable, _storage_error_handler)
    app.add_exception_handler(InputError, _input_error_handler)
    app.add_exception_handler(RequestValidationError, _request_validation_handler)
    app.add_exception_handler(HTTPException, _http_exception_handler)
