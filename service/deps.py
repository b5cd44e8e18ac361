"""FastAPI dependencies, read from app.state where create_app put them.

Dependencies that do no I/O are ``async def`` so FastAPI runs them inline rather than in its thread pool.
"""

import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service.auth import TenantRef, look_up_tenant
from service.errors import Unauthorized
from service.presenters import UrlSigner
from service.prompts import PromptLengthChecker
from service.queue import JobQueue
from service.settings import Settings
from service.storage import ObjectStore


async def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    # Sync on purpose: FastAPI closes it on a separate thread limiter, so closing never waits behind routes
    # that wait for a pooled connection. Routes give the connection back earlier (SessionReleasingRoute).
    with request.app.state.session_factory() as session:
        yield session


def _close_sessions(arguments: Mapping[str, Any]) -> None:
    for value in arguments.values():
        if isinstance(value, Session):
            value.close()


def _releasing_sessions(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """``endpoint`` closing its sessions as soon as it returns: the pooled connection goes back before the response
    is serialised (a second trip through the thread pool). Holding it until then lets finished requests keep every
    connection while new ones hold every thread, a deadlock only the pool timeout breaks."""
    if inspect.iscoroutinefunction(endpoint):

        @functools.wraps(endpoint)
        async def released_after_await(**arguments: Any) -> Any:
            try:
                return await endpoint(**arguments)
            finally:
                _close_sessions(arguments)

        return released_after_await

    @functools.wraps(endpoint)
    def released_after_call(**arguments: Any) -> Any:
        try:
            return endpoint(**arguments)
        finally:
            _close_sessions(arguments)

    return released_after_call


class SessionReleasingRoute(APIRoute):
    """The route class of every router whose routes take a SessionDep."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, _releasing_sessions(endpoint), **kwargs)


async def get_store(request: Request) -> ObjectStore:
    return request.app.state.store


async def get_queue(request: Request) -> JobQueue:
    return request.app.state.queue


async def get_prompt_lengths(request: Request) -> PromptLengthChecker:
    return request.app.state.prompt_lengths


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
StoreDep = Annotated[ObjectStore, Depends(get_store)]
QueueDep = Annotated[JobQueue, Depends(get_queue)]
PromptLengthsDep = Annotated[PromptLengthChecker, Depends(get_prompt_lengths)]

bearer_scheme = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`.")


def _look_up_and_release(session: Session, key: str) -> TenantRef | None:
    """The lookup gives its connection back before the route waits for a thread (see _releasing_sessions)."""
    try:
        return look_up_tenant(session, key)
    finally:
        session.close()


async def get_current_tenant(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> TenantRef:
    if credentials is None:
        raise Unauthorized("Send an API key in the header `Authorization: Bearer <key>`.", code="missing_api_key")
    # Looked up on every request, never cached: a revoked key stops working at once in every API process.
    tenant = await run_in_threadpool(_look_up_and_release, session, credentials.credentials)
    if tenant is None:
        raise Unauthorized("The API key is not valid.", code="invalid_api_key")
    return tenant


CurrentTenant = Annotated[TenantRef, Depends(get_current_tenant)]


async def get_url_signer(request: Request, settings: SettingsDep, store: StoreDep) -> UrlSigner:
    return UrlSigner(store, api_base_url=str(request.base_url), expires_in=settings.signed_url_expiry_seconds)


UrlSignerDep = Annotated[UrlSigner, Depends(get_url_signer)]
