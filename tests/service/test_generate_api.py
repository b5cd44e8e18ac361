"""POST /generate and GET /generations/{id} against a recording queue: every check the API makes without the model."""

import secrets
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.models import JobStatus
from service.queue import RecordingJobQueue
from tests.service.job_requests import TEXT_ENCODER_LIMIT, assert_problem


def _ids(job: dict[str, Any]) -> list[str]:
    return [concept["id"] for concept in job["concepts"]]


def test_a_generation_is_queued_with_its_options_and_a_seed(
    client: TestClient, queue: RecordingJobQueue, trained_job: Callable[..., dict[str, Any]]
) -> None:
    job = trained_job()
    body = {"concept_ids": _ids(job), "prompt": "<ball> and <box> in Paris", "num_images": 2, "scheduler": "ddim"}

    response = client.post("/generate", json=body)

    assert response.status_code == 202, response.text
    generation = response.json()
    assert generation["status"] == "queued" and generation["job_id"] == job["id"]
    assert generation["options"] == {
        "num_images": 2,
        "steps": 50,
        "guidance_scale": 7.5,
        "width": None,
        "height": None,
        "scheduler": "ddim",
    }
    assert 0 <= generation["seed"] < 2**31 and generation["images"] == []
    assert generation["timings"] == {"queued_seconds": None, "running_seconds": None}
    assert queue.submitted_generations == [generation["id"]]
    assert client.get(f"/generations/{generation['id']}").json() == generation


def test_one_concept_id_names_a_concept_set_of_one(client: TestClient, trained_job: Callable[..., dict]) -> None:
    job = trained_job()
    response = client.post("/generate", json={"concept_ids": _ids(job)[1], "prompt": "<box>", "seed": 4})
    assert response.status_code == 202, response.text
    assert response.json()["concept_ids"] == _ids(job)[1:] and response.json()["seed"] == 4


def test_a_bounded_wait_that_runs_out_still_answers_202(
    client: TestClient, trained_job: Callable[..., dict[str, Any]]
) -> None:
    job = trained_job()
    response = client.post(
        "/generate", json={"concept_ids": _ids(job), "prompt": "<ball>"}, headers={"Prefer": "wait=1"}
    )
    assert response.status_code == 202 and response.json()["status"] == "queued"
    assert response.headers["preference-applied"] == "wait=1"


def test_unknown_placeholders_are_422_listing_the_known_ones(
    client: TestClient, queue: RecordingJobQueue, trained_job: Callable[..., dict[str, Any]]
) -> None:
    job = trained_job()
    body = {"concept_ids": _ids(job)[:1], "prompt": "<ball> and <box>", "negative_prompt": "<cow>"}
    problem = assert_problem(client.post("/generate", json=body), 422, "<box>, <cow>", "known placeholders: <ball>")
    assert problem["code"] == "unknown_placeholder"
    assert {error["field"] for error in problem["errors"]} == {"prompt", "negative_prompt"}
    assert queue.submitted_generations == []


def test_a_prompt_longer_than_the_text_encoder_reads_is_422(
    client: TestClient, trained_job: Callable[..., dict[str, Any]]
) -> None:
    job = trained_job()
    fits = "<ball> " + "very " * (TEXT_ENCODER_LIMIT - 3)  # start and end tokens, the placeholder, the words
    assert client.post("/generate", json={"concept_ids": _ids(job), "prompt": fits}).status_code == 202
    body = {"concept_ids": _ids(job), "prompt": fits + "cute"}
    problem = assert_problem(client.post("/generate", json=body), 422, "78 tokens", "at most 77")
    assert problem["code"] == "prompt_too_long"


def test_concepts_of_different_jobs_are_422(client: TestClient, trained_job: Callable[..., dict[str, Any]]) -> None:
    first, second = trained_job(), trained_job(concepts=("cat", "dog"))
    body = {"concept_ids": [_ids(first)[0], _ids(second)[0]], "prompt": "<ball> and <cat>"}
    problem = assert_problem(client.post("/generate", json=body), 422, "different jobs", "not supported yet")
    assert problem["code"] == "concepts_from_different_jobs"


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.TRAINING, JobStatus.FAILED, JobStatus.CANCELED])
def test_concepts_of_a_job_that_has_not_succeeded_are_409(
    client: TestClient, trained_job: Callable[..., dict[str, Any]], status: JobStatus
) -> None:
    job = trained_job(status)
    problem = assert_problem(client.post("/generate", json={"concept_ids": _ids(job), "prompt": "<ball>"}), 409)
    assert problem["code"] == "job_not_succeeded" and status.value in problem["detail"]
    assert_problem(client.get(f"/jobs/{job['id']}/export", params={"format": "diffusers"}), 409)


def test_another_tenants_concepts_and_generations_are_404(
    client: TestClient, trained_job: Callable[..., dict[str, Any]], new_api_key: Callable[[], str]
) -> None:
    job = trained_job()
    generation = client.post("/generate", json={"concept_ids": _ids(job), "prompt": "<ball>"}).json()
    stranger = {"Authorization": f"Bearer {new_api_key()}"}
    body = {"concept_ids": _ids(job), "prompt": "<ball>"}
    assert_problem(client.post("/generate", json=body, headers=stranger), 404, _ids(job)[0])
    assert_problem(client.get(f"/generations/{generation['id']}", headers=stranger), 404)
    assert_problem(client.get(f"/jobs/{job['id']}/export?format=diffusers", headers=stranger), 404)
    assert_problem(client.post("/generate", json={**body, "concept_ids": [secrets.token_hex(4)]}), 404)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"num_images": 0}, "num_images"),
        ({"num_images": 9}, "num_images"),
        ({"steps": 151}, "steps"),
        ({"guidance_scale": -1}, "guidance_scale"),
        ({"width": 100}, "width"),
        ({"height": 2048}, "height"),
        ({"seed": 2**31}, "seed"),
        ({"scheduler": "euler"}, "scheduler"),
        ({"concept_ids": []}, "concept_ids"),
        ({"prompt": ""}, "prompt"),
        ({"sampler": "x"}, "sampler"),
        ({"prompt": "<ball>\x00"}, "prompt"),
        ({"negative_prompt": "blurry\x1b[31m"}, "negative_prompt"),
        ({"steps": "2"}, "steps"),
        ({"num_images": True}, "num_images"),
    ],
)
def test_options_out_of_bounds_are_422(
    client: TestClient, trained_job: Callable[..., dict[str, Any]], change: dict[str, Any], field: str
) -> None:
    job = trained_job()
    response = client.post("/generate", json={"concept_ids": _ids(job), "prompt": "<ball>", **change})
    problem = assert_problem(response, 422)
    assert [error["field"] for error in problem["errors"]] == [field]


def test_an_unknown_export_format_is_422(client: TestClient, trained_job: Callable[..., dict[str, Any]]) -> None:
    job = trained_job()
    assert_problem(client.get(f"/jobs/{job['id']}/export", params={"format": "onnx"}), 422, "format")
    export = client.get(f"/jobs/{job['id']}/export", params={"format": "diffusers"})
    assert export.status_code == 200 and export.json() == {"job_id": job["id"], "items": []}
