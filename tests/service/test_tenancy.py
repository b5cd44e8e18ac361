"""API keys and tenant isolation: another tenant's objects do not exist for you."""

import secrets
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from service.auth import create_api_key
from service.db import create_session_factory
from tests.service.job_requests import assert_problem, post_job


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ({}, "Authorization: Bearer <key>"),
        ({"Authorization": "Bearer ak_not-a-real-key"}, "not valid"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "Authorization: Bearer <key>"),
        ({"Authorization": "Bearer"}, "Authorization: Bearer <key>"),
    ],
)
def test_missing_or_invalid_key_is_401(app_client: TestClient, headers: dict, fragment: str) -> None:
    for response in (
        app_client.get("/jobs", headers=headers),
        app_client.get("/jobs/some-id", headers=headers),
        app_client.post("/jobs", headers=headers, data={"concepts": ["cat", "dog"]}),
    ):
        assert_problem(response, 401, fragment)
        assert response.headers["www-authenticate"] == "Bearer"


def test_health_needs_no_key(app_client: TestClient) -> None:
    assert app_client.get("/healthz").status_code == 200
    assert app_client.get("/readyz").status_code == 200


def test_another_tenants_objects_are_404(app_client: TestClient, new_api_key: Callable[[], str]) -> None:
    owner = {"Authorization": f"Bearer {new_api_key()}"}
    stranger = {"Authorization": f"Bearer {new_api_key()}"}
    app_client.headers.update(owner)
    job = post_job(app_client).json()
    concept_id = job["concepts"][0]["id"]

    app_client.headers.update(stranger)
    assert_problem(app_client.get(f"/jobs/{job['id']}"), 404, "There is no job")
    assert_problem(app_client.get(f"/jobs/{job['id']}/artifacts"), 404, "There is no job")
    assert_problem(app_client.post(f"/jobs/{job['id']}/cancel"), 404, "There is no job")
    assert_problem(app_client.get(f"/concepts/{concept_id}"), 404, "There is no concept")
    assert app_client.get("/jobs").json() == {"items": [], "next_cursor": None}

    app_client.headers.update(owner)
    assert app_client.get(f"/jobs/{job['id']}").json()["status"] == "queued"
    assert [j["id"] for j in app_client.get("/jobs").json()["items"]] == [job["id"]]


def test_keys_of_one_tenant_share_its_jobs(app_client: TestClient, engine: Engine) -> None:
    tenant_name = f"tenant-{secrets.token_hex(6)}"
    with create_session_factory(engine)() as session:
        first = create_api_key(session, tenant_name)
        second = create_api_key(session, tenant_name)
        session.commit()
    app_client.headers["Authorization"] = f"Bearer {first}"
    job_id = post_job(app_client).json()["id"]

    app_client.headers["Authorization"] = f"Bearer {second}"
    assert app_client.get(f"/jobs/{job_id}").status_code == 200
