"""What the web app reads besides the JSON API: the pages and their local assets, the photo's URL, a job's zip
archives and its gallery of generations."""

import io
import re
import zipfile
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from service import repository
from service.db import create_session_factory
from service.models import Job
from service.storage import LocalDirectoryStore
from tests.service.job_requests import assert_problem, image_bytes, post_job


def test_the_app_and_the_docs_come_from_this_server(app_client: TestClient) -> None:
    page = app_client.get("/")
    assert page.status_code == 200 and 'src="/app/app.js"' in page.text
    assert app_client.get("/app/app.js").headers["content-type"].startswith("text/javascript")
    for docs in ("/docs", "/redoc"):
        html = app_client.get(docs).text
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert assets and all(asset.startswith("/docs-assets/") for asset in assets), assets
        assert all(app_client.get(asset).status_code == 200 for asset in assets)
    assert "default-src 'self'" in app_client.get("/redoc").text


def test_the_job_links_its_photo(client: TestClient) -> None:
    photo = image_bytes()
    job = post_job(client, image=photo).json()
    assert client.get(job["image_url"]).content == photo


def finish_with_artifacts(engine: Engine, store: LocalDirectoryStore, job_id: str) -> None:
    with create_session_factory(engine)() as session:
        job = session.get_one(Job, job_id)
        files = {"weights": "artifacts/weights.safetensors", "diffusers/a.bin": "export/diffusers/a.bin"}
        prefix = f"tenants/{job.tenant_id}/jobs/{job_id}"
        stored = [
            (name, store.put(f"{prefix}/{key}", io.BytesIO(name.encode()), content_type="x"))
            for name, key in files.items()
        ]
        assert repository.claim_job(session, job_id) == 1
        assert repository.finish_job(session, job_id, job.tenant_id, stored, {}, attempt=1)
        session.commit()


def test_the_archive_zips_the_concept_set_or_its_export_once_succeeded(
    client: TestClient, engine: Engine, local_store: LocalDirectoryStore
) -> None:
    job = post_job(client).json()
    assert_problem(client.get(f"/jobs/{job['id']}/archive"), 409, "has not succeeded")
    finish_with_artifacts(engine, local_store, job["id"])

    own = client.get(f"/jobs/{job['id']}/archive")
    export = client.get(f"/jobs/{job['id']}/archive", params={"format": "diffusers"})

    assert own.headers["content-type"] == "application/zip"
    assert f'filename="attencraft-{job["id"]}.zip"' in own.headers["content-disposition"]
    assert zipfile.ZipFile(io.BytesIO(own.content)).read("weights.safetensors") == b"weights"
    assert zipfile.ZipFile(io.BytesIO(export.content)).namelist() == ["a.bin"]
    assert_problem(client.get(f"/jobs/{job['id']}/archive", params={"format": "onnx"}), 422)


def test_a_job_gallery_lists_its_generations_for_its_tenant_only(
    client: TestClient, app_client: TestClient, new_api_key: Callable[[], str]
) -> None:
    job = post_job(client).json()
    assert client.get(f"/jobs/{job['id']}/generations").json() == {"job_id": job["id"], "items": []}
    other = {"Authorization": f"Bearer {new_api_key()}"}
    assert_problem(app_client.get(f"/jobs/{job['id']}/generations", headers=other), 404)
