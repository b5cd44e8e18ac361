"""Generation through the API of the embedded service (its worker thread, SQLite, the local store, the tiny model)."""

import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from fastapi.testclient import TestClient
from PIL import Image

from attencraft_cli.sample_photo import two_object_photo
from attencraft_cli.service_commands import embedded_service
from attencraft_core.export import load_custom_diffusion
from attencraft_core.models import build_builtin_pipeline
from service.settings import Settings

TRAIN_STEPS = 10
PROMPT = "a <ball> next to a <box>"
WAIT = {"Prefer": "wait=60"}

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Service:
    client: TestClient
    job: dict[str, Any]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The embedded service with one job trained on it, shared by this module's tests."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("embedded"), base_model="tiny", device="cpu")
    with embedded_service(settings) as embedded, TestClient(embedded.app) as client:
        key = embedded.new_key()
        client.headers["Authorization"] = f"Bearer {key}"
        photo = io.BytesIO()
        two_object_photo().save(photo, format="PNG")
        response = client.post(
            "/jobs",
            data={"concepts": ["ball", "box"], "options": f'{{"steps": {TRAIN_STEPS}, "seed": 1}}'},
            files={"image": ("photo.png", photo.getvalue(), "image/png")},
        )
        assert response.status_code == 202, response.text
        while (job := client.get(f"/jobs/{response.json()['id']}").json())["status"] not in ("succeeded", "failed"):
            time.sleep(0.2)
        assert job["status"] == "succeeded", job["error"]
        yield Service(client, job)


def _generate(service: Service, **body: Any) -> dict[str, Any]:
    concept_ids = [concept["id"] for concept in service.job["concepts"]]
    response = service.client.post("/generate", json={"concept_ids": concept_ids, **body}, headers=WAIT)
    assert response.status_code == 200, response.text
    assert response.headers["preference-applied"] == "wait=60"
    generation = response.json()
    assert generation["status"] == "succeeded", generation["error"]
    return generation


def _download(service: Service, url: str) -> bytes:
    response = service.client.get(url)
    assert response.status_code == 200
    return response.content


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)


def test_generate_waits_for_images_that_are_reproducible_for_a_seed(service: Service) -> None:
    options = {"prompt": PROMPT, "num_images": 2, "steps": 3, "seed": 11, "width": 128, "height": 128}
    first, second = _generate(service, **options), _generate(service, **options, scheduler="dpmsolver++")
    again = _generate(service, **options)

    assert first["seed"] == 11 and len(first["images"]) == 2
    assert first["timings"]["running_seconds"] > 0 and first["timings"]["queued_seconds"] >= 0
    pictures = [_download(service, image["url"]) for image in first["images"]]
    assert [Image.open(io.BytesIO(picture)).size for picture in pictures] == [(128, 128)] * 2
    assert pictures == [_download(service, image["url"]) for image in again["images"]]
    assert pictures[0] != _download(service, second["images"][0]["url"])
    assert service.client.get(f"/generations/{first['id']}").json()["status"] == "succeeded"


def test_a_prompt_too_long_for_the_text_encoder_is_422(service: Service) -> None:
    concept_ids = [concept["id"] for concept in service.job["concepts"]]
    response = service.client.post("/generate", json={"concept_ids": concept_ids, "prompt": "<ball> " + "very " * 80})
    assert response.status_code == 422 and response.json()["code"] == "prompt_too_long", response.text


def test_the_diffusers_export_draws_the_same_image_in_a_stock_pipeline(service: Service, tmp_path: Path) -> None:
    export = service.client.get(f"/jobs/{service.job['id']}/export", params={"format": "diffusers"})
    assert export.status_code == 200, export.text
    folder = tmp_path / "export"
    folder.mkdir()
    for item in export.json()["items"]:
        (folder / item["name"]).write_bytes(_download(service, item["url"]))
    assert sorted(path.name for path in folder.iterdir()) == [
        "<ball>.safetensors",
        "<box>.safetensors",
        "attencraft_export.json",
        "pytorch_custom_diffusion_weights.safetensors",
    ]
    build_builtin_pipeline("tiny").save_pretrained(tmp_path / "base")
    stock = StableDiffusionPipeline.from_pretrained(tmp_path / "base", safety_checker=None)
    stock.set_progress_bar_config(disable=True)
    assert load_custom_diffusion(stock, folder) == ["<ball>", "<box>"]

    ours = _generate(service, prompt=PROMPT, steps=4, seed=7)
    generator = torch.Generator().manual_seed(7)
    theirs = stock(PROMPT, num_inference_steps=4, guidance_scale=7.5, generator=generator).images[0]

    difference = np.abs(_pixels(_download(service, ours["images"][0]["url"])) - np.asarray(theirs, dtype=np.int16))
    assert difference.max() <= 1, difference.max()
