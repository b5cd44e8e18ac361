"""Choosing a training method and AttenCraft's ablations through POST /jobs."""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.queue import RecordingJobQueue
from service.storage import LocalDirectoryStore
from tests.service.job_requests import assert_problem, half_mask_bytes, post_job


def test_a_baseline_job_shows_its_method_and_effective_hyperparameters(client: TestClient) -> None:
    response = post_job(client, options={"method": "custom_diffusion", "prior_images": 20})
    assert response.status_code == 202, response.text
    job = response.json()
    recipe = job["recipe"]
    assert (recipe["method"], recipe["preset"], recipe["steps"]) == ("custom_diffusion", "attencraft_comparison", 200)
    assert recipe["stages"] == [{"name": "identifiers+kv", "steps": 200, "learning_rate": 5e-5, "trains_kv": True}]
    assert (recipe["detach_sot_kv"], recipe["hflip"]) == (True, False)
    assert (recipe["prior_preservation"], recipe["prior_images"]) == (True, 20)
    assert recipe["prompt_expansion"] == "token+class"
    assert recipe["ratios"] is None and recipe["omega"] is None
    assert job["progress"]["total"] == 200
    assert job["masks_source"] == "none"
    assert client.get(f"/jobs/{job['id']}").json()["recipe"] == recipe


def test_break_a_scene_official_preset_has_two_stages(client: TestClient) -> None:
    job = post_job(client, options={"method": "break_a_scene", "preset": "official"}).json()
    assert [(s["steps"], s["learning_rate"], s["trains_kv"]) for s in job["recipe"]["stages"]] == [
        (400, 5e-4, False),
        (400, 2e-6, True),
    ]
    assert job["progress"]["total"] == 800


def test_attencraft_ablations_reach_the_recipe(client: TestClient) -> None:
    options = {"ratios": "equal", "multi_concept_loss": "attention_and_reconstruction", "omega": 0.5}
    recipe = post_job(client, options=options).json()["recipe"]
    assert (recipe["ratios"], recipe["multi_concept_loss"], recipe["omega"]) == (
        "equal",
        "attention_and_reconstruction",
        0.5,
    )


@pytest.mark.parametrize(
    ("options", "field", "fragments"),
    [
        ({"method": "dreambooth"}, "options.method", ["attencraft", "custom_diffusion", "break_a_scene"]),
        ({"ratios": "uniform"}, "options.ratios", ["adaptive", "equal", "no_softmax"]),
        ({"omega": 1.5}, "options.omega", ["omega"]),
        ({"method": "disendiff", "ratios": "equal"}, "options.ratios", ["only valid with method attencraft"]),
        ({"method": "break_a_scene", "omega": 0.2}, "options.omega", ["only valid with method attencraft"]),
        ({"method": "break_a_scene", "steps": 1}, "options.steps", ["between 2 and"]),
    ],
)
def test_bad_method_settings_are_422_and_create_nothing(
    client: TestClient,
    queue: RecordingJobQueue,
    local_store: LocalDirectoryStore,
    options: dict,
    field: str,
    fragments: list[str],
) -> None:
    problem = assert_problem(post_job(client, options=options), 422, *fragments)
    assert problem["errors"][0]["field"] == field
    assert client.get("/jobs").json()["items"] == []
    assert queue.submitted == []
    assert not any(path.is_file() for path in Path(local_store.root).rglob("*"))


def test_masks_for_a_method_that_reads_none_are_422(client: TestClient, queue: RecordingJobQueue) -> None:
    masks = [half_mask_bytes((64, 48), left=True), half_mask_bytes((64, 48), left=False)]
    problem = assert_problem(post_job(client, masks=masks, options={"method": "disendiff"}), 422, "uses no masks")
    assert problem["code"] == "masks_not_used"
    assert queue.submitted == []
    accepted = post_job(client, masks=masks, options={"method": "break_a_scene"}).json()
    assert accepted["masks_source"] == "uploaded"
    assert post_job(client, options={"method": "break_a_scene"}).json()["masks_source"] == "attention"
