"""The embedded worker's base model loads in the background; /readyz says "loading" meanwhile, and names the
reason when it cannot load, and a job then fails with that reason instead of a vague one."""

import io
import json
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from attencraft_cli.sample_photo import two_object_photo
from attencraft_cli.service_commands import embedded_service
from attencraft_core.errors import ModelLoadError
from attencraft_core.model_spec import Precision, RunOptions
from service.settings import Settings
from tests.worker.cluster import poll
from worker.inprocess import WarmModel


@pytest.fixture
def broken_model(tmp_path: Path) -> Path:
    """A folder that looks like a diffusers pipeline until it is loaded."""
    folder = tmp_path / "broken-model"
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline", "unet": ["x", "y"]}))
    return folder


def test_the_model_state_goes_from_loading_to_ok(tmp_path: Path) -> None:
    model = WarmModel(Settings(data_dir=tmp_path, base_model="tiny", device="cpu"))
    assert model.state() == "loading tiny on cpu"
    assert model.wait(timeout_s=300) == "ok"
    assert model().resolution == 256


def test_the_settings_choose_how_the_model_runs(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, base_model="tiny", device="cpu", precision="bf16", gradient_checkpointing=True
    )
    model = WarmModel(settings)()
    assert model.options == RunOptions(precision=Precision.BF16, gradient_checkpointing=True, compile_unet=False)
    assert model.autocast_dtype == torch.bfloat16
    assert model.pipeline.unet.is_gradient_checkpointing


def test_a_model_that_cannot_load_stays_failed_with_its_reason(tmp_path: Path, broken_model: Path) -> None:
    model = WarmModel(Settings(data_dir=tmp_path, base_model=str(broken_model), device="cpu"))
    assert model.wait(timeout_s=120).startswith("failed: Could not load the base model")
    with pytest.raises(ModelLoadError):
        model()


def test_readyz_and_jobs_report_a_model_that_cannot_load(tmp_path: Path, broken_model: Path) -> None:
    settings = Settings(data_dir=tmp_path, base_model=str(broken_model), device="cpu")
    photo = io.BytesIO()
    two_object_photo(64).save(photo, format="PNG")
    with embedded_service(settings) as service, TestClient(service.app) as client:
        client.headers["Authorization"] = f"Bearer {service.new_key()}"
        service.queue.model.wait(timeout_s=120)
        ready = client.get("/readyz")
        assert ready.status_code == 503
        problem = ready.json()
        assert problem["detail"].startswith("Not ready: model failed: Could not load the base model")
        assert [error["field"] for error in problem["errors"]] == ["model"]

        job = client.post(
            "/jobs", files={"image": ("p.png", photo.getvalue(), "image/png")}, data={"concepts": ["ball", "box"]}
        ).json()
        ended = poll(
            lambda: (current := client.get(f"/jobs/{job['id']}").json())["status"] == "failed" and current,
            timeout_s=60,
            what="the job to fail",
        )
    assert ended["error"]["code"] == "model_load_failed"
    assert ended["error"]["message"].startswith("Could not load the base model")
