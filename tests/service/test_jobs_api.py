"""The job endpoints on SQLite and PostgreSQL, with a queue that only records submissions."""

import io
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
from fastapi.testclient import TestClient
from PIL import Image

from service.app import create_app
from service.db import create_db_engine
from service.queue import RecordingJobQueue
from tests.service.job_requests import assert_problem, half_mask_bytes, image_bytes, post_job


def test_submit_returns_202_with_the_queued_job(client: TestClient, queue: RecordingJobQueue) -> None:
    response = post_job(client, concepts=["Cat", "dog"], options={"steps": 40, "seed": 7})

    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == "queued"
    assert job["progress"] == {"step": 0, "total": 40}
    assert job["options"] == {
        "steps": 40,
        "seed": 7,
        "fit": "crop",
        "method": "attencraft",
        "preset": "attencraft_comparison",
        "prior_preservation": None,
        "prior_images": None,
        "ratios": None,
        "multi_concept_loss": None,
        "omega": None,
    }
    assert job["recipe"]["method"] == "attencraft" and job["recipe"]["steps"] == 40
    assert job["error"] is None
    assert [(c["name"], c["placeholder"]) for c in job["concepts"]] == [("cat", "<cat>"), ("dog", "<dog>")]
    assert all(c["id"] and c["mask_url"] is None and c["ratio"] is None for c in job["concepts"])
    assert queue.submitted == [job["id"]]


def test_get_job_and_concept(client: TestClient) -> None:
    job = post_job(client, initializers=["kitten", ""]).json()

    fetched = client.get(f"/jobs/{job['id']}")
    assert fetched.status_code == 200
    assert fetched.json()["concepts"] == job["concepts"]
    assert [c["initializer"] for c in job["concepts"]] == ["kitten", None]

    concept = client.get(f"/concepts/{job['concepts'][0]['id']}").json()
    assert concept["placeholder"] == "<cat>"
    assert concept["class_name"] == "cat"
    assert concept["job_id"] == job["id"]
    assert concept["job_status"] == "queued"


def test_uploaded_masks_download_through_signed_urls(client: TestClient) -> None:
    size = (64, 48)
    masks = [half_mask_bytes(size, left=True), half_mask_bytes(size, left=False)]
    job = post_job(client, image=image_bytes("JPEG", size), masks=masks).json()

    for concept in job["concepts"]:
        download = client.get(concept["mask_url"])
        assert download.status_code == 200
        assert download.content.startswith(b"\x89PNG")


def test_tampered_or_unsigned_download_links_are_404(client: TestClient) -> None:
    size = (64, 48)
    job = post_job(client, masks=[half_mask_bytes(size, left=True), half_mask_bytes(size, left=False)]).json()
    url = urlsplit(job["concepts"][0]["mask_url"])
    query = dict(parse_qsl(url.query))

    for changed in ({"signature": "0" * 64}, {"expires": "1"}):
        forged = url._replace(query=urlencode(query | changed)).geturl()
        assert_problem(client.get(forged), 404, "invalid or has expired")


def test_list_pages_through_every_job_once(client: TestClient) -> None:
    created = [post_job(client).json()["id"] for _ in range(5)]

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/jobs", params=params).json()
        seen += [job["id"] for job in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(created))


def test_list_filters_by_status(client: TestClient) -> None:
    kept = post_job(client).json()["id"]
    canceled = post_job(client).json()["id"]
    client.post(f"/jobs/{canceled}/cancel")

    assert [job["id"] for job in client.get("/jobs", params={"status": "queued"}).json()["items"]] == [kept]
    assert [job["id"] for job in client.get("/jobs", params={"status": "canceled"}).json()["items"]] == [canceled]


def test_cancel_a_queued_job_then_again(client: TestClient) -> None:
    job_id = post_job(client).json()["id"]

    canceled = client.post(f"/jobs/{job_id}/cancel")
    assert canceled.status_code == 202
    assert canceled.json()["status"] == "canceled"
    assert canceled.json()["finished_at"] is not None

    assert_problem(client.post(f"/jobs/{job_id}/cancel"), 409, "already finished", "canceled")


def test_artifacts_of_a_job_without_results_is_an_empty_list(client: TestClient) -> None:
    job_id = post_job(client).json()["id"]

    assert client.get(f"/jobs/{job_id}/artifacts").json() == {"job_id": job_id, "items": []}


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {
        "status": "ready",
        "checks": {"database": "ok", "storage": "ok", "queue": "ok"},
    }


def test_openapi_documents_the_endpoints(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    assert {
        "/jobs",
        "/jobs/{job_id}",
        "/jobs/{job_id}/cancel",
        "/jobs/{job_id}/artifacts",
        "/concepts/{concept_id}",
    } <= set(paths)
    assert client.get("/docs").status_code == 200


def test_jobs_on_s3_storage_hand_out_presigned_urls(
    settings, queue, engine, s3_store, new_api_key: Callable[[], str]
) -> None:
    app = create_app(settings, queue=queue, store=s3_store, engine=engine)
    with TestClient(app, headers={"Authorization": f"Bearer {new_api_key()}"}) as client:
        size = (64, 48)
        job = post_job(client, masks=[half_mask_bytes(size, left=True), half_mask_bytes(size, left=False)]).json()
        assert client.get("/readyz").json()["checks"]["storage"] == "ok"

    mask_url = job["concepts"][1]["mask_url"]
    assert "X-Amz-Signature=" in mask_url
    mask = Image.open(io.BytesIO(httpx.get(mask_url).content))
    assert mask.size == size and mask.getpixel((0, 0)) == 0 and mask.getpixel((63, 0)) == 255


def test_a_lost_database_is_a_503_problem(settings, queue, local_store, tmp_path) -> None:
    unmigrated = create_db_engine(f"sqlite:///{tmp_path / 'never-migrated.db'}")
    app = create_app(settings, queue=queue, store=local_store, engine=unmigrated)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/jobs", headers={"Authorization": "Bearer ak_whatever"})

    problem = assert_problem(response, 503, "database is unavailable")
    assert problem["code"] == "database_down"
