"""Under many concurrent clients the API keeps answering: routes give their pooled connection back before the
response is serialised, the API-key lookup too, and an exhausted pool is a quick 503 with Retry-After."""

import asyncio
import itertools
import time
from collections.abc import Callable, Iterator, Sequence

import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from starlette.routing import BaseRoute

from service.app import create_app
from service.db import create_db_engine
from service.deps import SessionReleasingRoute, get_session
from service.queue import RecordingJobQueue
from service.settings import Settings
from service.storage import LocalDirectoryStore
from tests.service.infrastructure import served_over_http
from tests.service.job_requests import image_bytes

CLIENTS = 60
POLLING_S = 5.0
MAX_GAP_S = 10.0  # the stall this guards against lasted the pool timeout (30 s), then came 500s
REQUEST_TIMEOUT_S = 15.0


@pytest.fixture
def served(app: FastAPI) -> Iterator[str]:
    with served_over_http(app, backlog=CLIENTS * 2) as url:
        yield url


@pytest.fixture
def app(settings: Settings, engine: Engine, local_store: LocalDirectoryStore) -> FastAPI:
    return create_app(settings, queue=RecordingJobQueue(), store=local_store, engine=engine)


async def poll(http: httpx.AsyncClient, job_id: str, until: float, completions: list[tuple[float, int]]) -> None:
    while time.monotonic() < until:
        try:
            status = (await http.get(f"/jobs/{job_id}")).status_code
        except httpx.TimeoutException:
            status = 0  # no answer within REQUEST_TIMEOUT_S
        completions.append((time.monotonic(), status))


def test_many_pollers_never_stall(served: str, new_api_key: Callable[[], str]) -> None:
    key = new_api_key()
    with httpx.Client(base_url=served, headers={"Authorization": f"Bearer {key}"}) as http:
        files = {"image": ("photo.png", image_bytes(), "image/png")}
        job_id = http.post("/jobs", files=files, data={"concepts": ["cat", "dog"]}).json()["id"]
    completions: list[tuple[float, int]] = []

    async def run() -> None:
        until = time.monotonic() + POLLING_S
        connections = httpx.Limits(max_connections=CLIENTS)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(
            base_url=served, headers=headers, limits=connections, timeout=REQUEST_TIMEOUT_S
        ) as http:
            await asyncio.gather(*(poll(http, job_id, until, completions) for _ in range(CLIENTS)))

    asyncio.run(run())
    times = sorted(moment for moment, _ in completions)
    longest_gap = max(later - earlier for earlier, later in itertools.pairwise(times))
    statuses = {status for _, status in completions}
    print(f"{len(completions)} polls, longest gap {longest_gap:.2f} s, statuses {statuses}")
    assert statuses == {200}
    assert longest_gap < MAX_GAP_S


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_exhausted_pool_is_a_quick_503_to_retry(
    backend: str, request: pytest.FixtureRequest, settings: Settings, local_store: LocalDirectoryStore
) -> None:
    engine = create_db_engine(
        request.getfixturevalue(f"{backend}_url"), pool_size=1, pool_overflow=0, pool_timeout_s=0.5
    )
    app = create_app(settings, queue=RecordingJobQueue(), store=local_store, engine=engine)
    try:
        with TestClient(app) as client, engine.connect():  # the pool's only connection, held
            started = time.monotonic()
            response = client.get("/jobs", headers={"Authorization": "Bearer ak_anything"})
            waited = time.monotonic() - started
    finally:
        engine.dispose()
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert (response.json()["code"], response.headers["Retry-After"]) == ("database_busy", "1")
    assert waited < 10


def calls(dependant: Dependant) -> Iterator[object]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from calls(dependency)


def api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):  # an included router (FastAPI includes them lazily)
            yield from api_routes(route.original_router.routes)


def test_every_route_that_takes_a_session_gives_it_back_on_return(app: FastAPI) -> None:
    routes = list(api_routes(app.routes))
    with_session = [route for route in routes if get_session in calls(route.dependant)]
    assert len(with_session) > 10
    assert [route.path for route in with_session if not isinstance(route, SessionReleasingRoute)] == []
