"""`attencraft serve` as a user runs it: a real HTTP server process, SQLite, the local store, the tiny model."""

import hashlib
import io
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image
from safetensors.torch import load_file

from attencraft_cli.demo_cases import IMAGES_PER_PROMPT, TOY_DEMO_SEED
from attencraft_core.artifacts import ConceptSet
from tests.service.infrastructure import wait_for_http
from toyworld.scenes import held_out_scene

DATASET_IMAGE = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "cat_dog" / "image.jpg"
TRAIN_STEPS = 30
SERVER_START_TIMEOUT_S = 120
POLL_INTERVAL_S = 0.5

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Server:
    client: httpx.Client
    data_dir: Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serve(data_dir: Path, **settings: str) -> Iterator[tuple[str, Path]]:
    """Run `attencraft serve` on a free port with ATTENCRAFT_* settings; yield its URL and its log file."""
    port = _free_port()
    inherited = {name: value for name, value in os.environ.items() if not name.startswith("ATTENCRAFT_")}
    environment = {
        **inherited,
        "PYTHONUNBUFFERED": "1",
        "ATTENCRAFT_DATA_DIR": str(data_dir),
        **{f"ATTENCRAFT_{name.upper()}": value for name, value in settings.items()},
    }
    log_path = data_dir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "attencraft_cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=data_dir,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base_url}/readyz", timeout_s=SERVER_START_TIMEOUT_S, process=process)
        yield base_url, log_path
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        print(log_path.read_text(errors="replace")[-5000:])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("embedded")
    api_key = "ak_" + secrets.token_urlsafe(24)
    with (
        serve(data_dir, base_model="tiny", device="cpu", api_key=api_key) as (base_url, _log),
        httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30) as client,
    ):
        yield Server(client, data_dir)


def test_without_a_configured_key_serve_prints_a_working_one(tmp_path: Path) -> None:
    with serve(tmp_path, base_model="tiny") as (base_url, log_path):
        printed = re.search(r"API key of tenant 'default'.*: (ak_\S+)", log_path.read_text())
        assert printed, log_path.read_text()
        headers = {"Authorization": f"Bearer {printed.group(1)}"}
        assert httpx.get(f"{base_url}/jobs", headers=headers).json() == {"items": [], "next_cursor": None}
        assert httpx.get(f"{base_url}/jobs", headers={"Authorization": "Bearer ak_wrong"}).status_code == 401


def _submit(server: Server, steps: int) -> dict:
    response = server.client.post(
        "/jobs",
        files={"image": ("cat_dog.jpg", DATASET_IMAGE.read_bytes(), "image/jpeg")},
        data={"concepts": ["cat", "dog"], "options": json.dumps({"steps": steps, "seed": 1})},
    )
    assert response.status_code == 202, response.text
    return response.json()


def _wait_for(server: Server, job_id: str, *statuses: str) -> tuple[dict, set[str]]:
    seen: set[str] = set()
    while True:
        job = server.client.get(f"/jobs/{job_id}").json()
        seen.add(job["status"])
        if job["status"] in statuses:
            return job, seen
        assert job["status"] not in {"succeeded", "failed", "canceled"}, job
        time.sleep(POLL_INTERVAL_S)


@pytest.mark.skipif(not DATASET_IMAGE.is_file(), reason="../shared/datasets is not available")
def test_train_two_concepts_and_download_every_artifact(server: Server, tmp_path: Path) -> None:
    job = _submit(server, TRAIN_STEPS)
    assert job["status"] == "queued"

    job, seen = _wait_for(server, job["id"], "succeeded", "failed")
    assert job["status"] == "succeeded", job["error"]
    assert job["progress"] == {"step": TRAIN_STEPS, "total": TRAIN_STEPS}
    assert seen - {"queued", "masking", "estimating", "training", "saving"} == {"succeeded"}
    assert set(job["stage_timings"]) == {"masking", "estimating", "training", "saving"}
    assert abs(sum(concept["ratio"] for concept in job["concepts"]) - 1) < 1e-5

    artifacts = server.client.get(f"/jobs/{job['id']}/artifacts").json()["items"]
    assert {"weights", "metadata", "overlay", "loss_curve", "mask_0", "mask_1"} <= {a["name"] for a in artifacts}
    for artifact in artifacts:
        download = httpx.get(artifact["url"])
        assert download.status_code == 200, artifact["name"]
        assert hashlib.sha256(download.content).hexdigest() == artifact["sha256"]
        file_name = artifact["url"].split("?")[0].rsplit("/", 1)[1]
        (tmp_path / file_name).write_bytes(download.content)

    for concept in job["concepts"]:
        mask = Image.open(io.BytesIO(httpx.get(concept["mask_url"]).content))
        assert mask.mode == "L" and 0 < sum(1 for value in mask.getdata() if value) < mask.width * mask.height
    assert load_file(str(tmp_path / "weights.safetensors"))["embeddings"].shape[0] == 2
    concept_set = ConceptSet.load(tmp_path)
    assert concept_set.placeholders == ["<cat>", "<dog>"]


@pytest.mark.skipif(not DATASET_IMAGE.is_file(), reason="../shared/datasets is not available")
def test_cancel_mid_training_leaves_no_artifacts(server: Server) -> None:
    job = _submit(server, 2000)
    while (current := _wait_for(server, job["id"], "training")[0])["progress"]["step"] == 0:
        time.sleep(POLL_INTERVAL_S)
    assert current["progress"]["step"] < 2000

    canceled = server.client.post(f"/jobs/{job['id']}/cancel")
    assert canceled.status_code == 202 and canceled.json()["cancel_requested"]

    job, _ = _wait_for(server, job["id"], "canceled")
    assert job["finished_at"] and all(concept["mask_url"] is None for concept in job["concepts"])
    assert server.client.get(f"/jobs/{job['id']}/artifacts").json()["items"] == []
    job_files = [path for path in (server.data_dir / "store").rglob("*") if job["id"] in str(path) and path.is_file()]
    assert [path.name for path in job_files] == ["image.jpg"]


def run_demo(cwd: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """`attencraft demo` in a fresh process, on the CPU, with no ATTENCRAFT_ setting of the caller's."""
    inherited = {name: value for name, value in os.environ.items() if not name.startswith("ATTENCRAFT_")}
    return subprocess.run(
        [sys.executable, "-m", "attencraft_cli.main", "demo", *arguments],
        cwd=cwd,
        env={**inherited, "ATTENCRAFT_DEVICE": "cpu"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_demo_learns_a_toy_scene_draws_it_and_reads_the_pictures_with_the_oracle(tmp_path: Path) -> None:
    with socket.socket() as taken:  # the demo's port is in use: it must move to a free one, not hang
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_demo(tmp_path, "--steps", "4", "--port", str(port))

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Port {port} is in use; the demo uses port" in result.stderr
    assert "Succeeded" in result.stdout
    assert "artifacts/weights.safetensors" in result.stdout and "masks/0.png" in result.stdout
    assert (tmp_path / "attencraft-data" / "attencraft.db").is_file()
    scene = held_out_scene(TOY_DEMO_SEED)
    first, second = (f"<{obj.class_name}>" for obj in scene.objects)
    assert f"learn {first} and {second} from held-out toy scene" in result.stdout
    assert "The toy world's oracle sees" in result.stdout
    readout = result.stdout.split("The toy world's oracle sees")[1]
    for prompt in (f"'a photo of {first}'", f"'a photo of {second}'", f"'a photo of {first} and {second}'"):
        assert prompt in readout
    assert f"{scene.objects[0].shade} {scene.objects[0].class_name} in " in readout
    pictures = list((tmp_path / "attencraft-data" / "demo").rglob("prompt*.png"))
    assert len(pictures) == 3 * IMAGES_PER_PROMPT


def test_demo_on_another_base_model_learns_the_synthetic_photo(tmp_path: Path) -> None:
    result = run_demo(tmp_path, "--model", "tiny", "--steps", "2", "--port", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "learn <ball> and <box> from a generated photo" in result.stdout
    assert "Generated pictures" in result.stdout and "oracle" not in result.stdout
