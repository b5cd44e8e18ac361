"""GET /jobs/{id}/report on both databases: mask areas and overlaps read from the stored masks (the worker's or the
uploaded ones), sampling ratios, the job's and each concept's loss curve in stretches, a job that has nothing yet,
auth and tenancy. The worker's writes are made with the repository functions it calls."""

import io
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import Engine

from attencraft_contract.models import LossRecord
from service import repository
from service.db import create_session_factory
from service.job_report import CURVE_POINTS, loss_curve
from service.models import JobStatus
from service.storage import LocalDirectoryStore
from tests.service.job_requests import assert_problem, half_mask_bytes, post_job


def columns_mask(first: int, last: int, size: tuple[int, int] = (64, 48)) -> bytes:
    """A PNG mask, white from column `first` to `last` (excluded), the whole height."""
    mask = Image.new("L", size, 0)
    mask.paste(255, (first, 0, last, size[1]))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    return buffer.getvalue()


def loss(step: int, subset: list[str], value: float) -> dict[str, object]:
    return {"step": step, "subset": subset, "timestep": 5, "loss": value, "reconstruction": value, "attention": 0.0}


def train_like_a_worker(engine: Engine, job_id: str, mask_keys: list[str], losses: list[dict[str, object]]) -> None:
    with create_session_factory(engine)() as session:
        attempt = repository.claim_job(session, job_id)
        assert attempt is not None
        if mask_keys:
            repository.record_masks(session, job_id, attempt, mask_keys)
        repository.record_ratios(session, job_id, attempt, [0.75, 0.25])
        repository.enter_stage(session, job_id, JobStatus.TRAINING, {}, attempt=attempt)
        stage = {"name": "identifiers+kv", "number": 1, "count": 1}
        repository.record_progress(
            session, job_id, attempt, [], step=4, total=40, eta_seconds=1.0, losses=losses, training_stage=stage
        )
        session.commit()


def test_the_report_of_a_job_with_attention_masks(
    client: TestClient, engine: Engine, local_store: LocalDirectoryStore
) -> None:
    job = post_job(client, options={"steps": 40}).json()
    keys = [
        local_store.put(f"m/{job['id']}/{name}.png", io.BytesIO(mask), content_type="image/png").key
        for name, mask in (("0", columns_mask(0, 48)), ("1", columns_mask(16, 64)))
    ]
    losses = [loss(1, ["cat"], 0.8), loss(2, ["cat"], 0.6), loss(3, ["dog"], 0.5), loss(4, ["cat", "dog"], 0.1)]
    train_like_a_worker(engine, job["id"], keys, losses)

    report = client.get(f"/jobs/{job['id']}/report").json()

    # 40 steps in 20 stretches of 2: steps 1-2 and 3-4.
    assert report["job_id"] == job["id"] and report["status"] == "training" and report["method"] == "attencraft"
    assert (report["masks_source"], report["steps_trained"], report["total_steps"]) == ("attention", 4, 40)
    cat, dog = report["concepts"]
    assert (cat["name"], cat["placeholder"], cat["ratio"], cat["mask_area"]) == ("cat", "<cat>", 0.75, 0.75)
    assert (dog["ratio"], dog["mask_area"], cat["single_steps"], dog["single_steps"]) == (0.25, 0.75, 2, 1)
    assert [(p["from_step"], p["to_step"], p["steps"], p["loss"]) for p in cat["loss_curve"]] == [(1, 2, 2, 0.7)]
    assert [(p["from_step"], p["to_step"], p["steps"], p["loss"]) for p in dog["loss_curve"]] == [(3, 4, 1, 0.5)]
    assert report["mask_overlaps"] == [{"concepts": ["cat", "dog"], "iou": 0.5}]  # 32 shared columns of 64
    assert [(p["from_step"], p["steps"]) for p in report["loss_curve"]] == [(1, 2), (3, 2)]
    assert report["loss_curve"][1]["reconstruction"] == pytest.approx(0.3)


def test_uploaded_masks_are_reported_before_the_worker_starts_and_a_method_without_masks_has_none(
    client: TestClient,
) -> None:
    uploaded = post_job(
        client, masks=[half_mask_bytes((64, 48), left=True), half_mask_bytes((64, 48), left=False)]
    ).json()
    unmasked = post_job(client, options={"method": "custom_diffusion"}).json()

    report = client.get(f"/jobs/{uploaded['id']}/report").json()
    nothing = client.get(f"/jobs/{unmasked['id']}/report").json()

    assert report["masks_source"] == "uploaded" and report["steps_trained"] == 0
    assert [c["mask_area"] for c in report["concepts"]] == [0.5, 0.5]
    assert report["mask_overlaps"] == [{"concepts": ["cat", "dog"], "iou": 0.0}]
    assert report["loss_curve"] == [] and all(c["loss_curve"] == [] for c in report["concepts"])
    assert (nothing["masks_source"], nothing["method"], nothing["mask_overlaps"]) == ("none", "custom_diffusion", [])
    assert [c["mask_area"] for c in nothing["concepts"]] == [None, None]


def test_only_the_owner_reads_a_report(client: TestClient, new_api_key: Callable[[], str]) -> None:
    job = post_job(client).json()
    path = f"/jobs/{job['id']}/report"

    assert_problem(client.get(path, headers={"Authorization": f"Bearer {new_api_key()}"}), 404)
    assert_problem(client.get(path, headers={"Authorization": ""}), 401)


def test_a_curve_has_at_most_its_number_of_stretches_and_ends_at_the_last_step() -> None:
    records = [LossRecord.model_validate(loss(step, ["cat"], step)) for step in range(1, 302)]

    curve = loss_curve(records, 301)

    assert len(curve) == 19 <= CURVE_POINTS  # stretches of ceil(301 / 20) = 16 steps; the 19th ends at 301
    assert (curve[0].from_step, curve[0].to_step, curve[0].loss) == (1, 16, 8.5)
    assert (curve[-1].from_step, curve[-1].to_step, curve[-1].steps) == (289, 301, 13)
