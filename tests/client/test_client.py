"""The Python client against the embedded server over HTTP: submit, wait with progress, generate, download, and
the API's problems raised as typed exceptions; the same with the async client."""

import asyncio
import contextlib
import hashlib
import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from PIL import Image

from attencraft_cli.main import main
from attencraft_cli.sample_photo import two_object_photo
from attencraft_cli.service_commands import embedded_service
from attencraft_client import ApiError, AsyncClient, Client
from attencraft_contract.errors import InputError
from attencraft_contract.models import ImageFit, JobStatus
from attencraft_core.training import StepRecord
from service.settings import Settings
from worker.jobs import JobReporter

TRAIN_STEPS = 2
TRAINING_BAR = "training   ["  # the bar Job.wait(progress=True) draws while the job trains


@dataclass(frozen=True)
class Server:
    url: str
    key: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("client"), base_model="tiny", device="cpu")
    with socket.socket() as sock, embedded_service(settings) as service:
        sock.bind(("127.0.0.1", 0))
        http = uvicorn.Server(uvicorn.Config(service.app, log_level="warning"))
        thread = threading.Thread(target=http.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not http.started:
            time.sleep(0.05)
        try:
            yield Server(f"http://127.0.0.1:{sock.getsockname()[1]}", service.new_key())
        finally:
            http.should_exit = True
            thread.join(10)


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("photo") / "wide.png"
    two_object_photo(128).resize((192, 128)).save(path)
    return path


@dataclass(frozen=True)
class Trained:
    job_id: str
    stderr: str  # what Job.wait(progress=True) drew
    requests: list[str]  # the paths the client asked for while submitting and waiting


@pytest.fixture(scope="module")
def trained(server: Server, photo: Path) -> Trained:
    requests: list[str] = []
    http = httpx.Client(
        base_url=server.url, event_hooks={"request": [lambda request: requests.append(request.url.path)]}
    )
    err = io.StringIO()
    take_step = JobReporter.on_step

    def step_once_the_client_drew_training(reporter: JobReporter, record: StepRecord, total: int) -> None:
        # A job of TRAIN_STEPS could otherwise train between two looks of the client: hold it (a minute at most).
        deadline = time.monotonic() + 60
        while TRAINING_BAR not in err.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
        take_step(reporter, record, total)

    with (
        pytest.MonkeyPatch.context() as patch,
        Client(server.url, server.key, http=http) as client,
        contextlib.redirect_stderr(err),
    ):
        patch.setattr(JobReporter, "on_step", step_once_the_client_drew_training)
        job = client.create_job(photo, ["ball", "box"], steps=TRAIN_STEPS, fit="pad").wait(progress=True, timeout_s=600)
    assert job.status == JobStatus.SUCCEEDED, job.data.error
    return Trained(job.id, err.getvalue(), requests)


def test_waiting_asks_for_the_event_stream_and_draws_a_progress_bar(trained: Trained) -> None:
    # One stream from submit to the end (no polling), then the final state; the bar is drawn from its events.
    assert trained.requests == ["/jobs", f"/jobs/{trained.job_id}/events", f"/jobs/{trained.job_id}"]
    assert TRAINING_BAR in trained.stderr
    assert trained.stderr.rstrip().endswith(f"succeeded  [{'#' * 30}] {TRAIN_STEPS}/{TRAIN_STEPS}")


def test_the_job_records_how_the_photo_was_made_square(server: Server, trained: Trained) -> None:
    with Client(server.url, server.key) as client:
        job = client.get_job(trained.job_id)
    assert (job.status, job.data.progress.step, job.data.options.fit) == (
        JobStatus.SUCCEEDED,
        TRAIN_STEPS,
        ImageFit.PAD,
    )


def test_generate_and_download(server: Server, trained: Trained, tmp_path: Path) -> None:
    job_id = trained.job_id
    with Client(server.url, server.key) as client:
        generation = client.generate(job_id, "<ball> next to a <box>", num_images=2, steps=1, width=64, height=64)
        paths = generation.save(tmp_path / "scene.png")
        artifacts = client.download(job_id, tmp_path / "artifacts")
        export = client.download(job_id, tmp_path / "export", export="diffusers")
        weights = next(item for item in client.artifacts(job_id).items if item.name == "weights")

    assert [path.name for path in paths] == ["scene-0.png", "scene-1.png"]
    assert all(Image.open(path).size == (64, 64) for path in paths)
    assert {"weights.safetensors", "metadata.json"} <= {path.name for path in artifacts}
    assert "pytorch_custom_diffusion_weights.safetensors" in {path.name for path in export}
    assert hashlib.sha256((tmp_path / "artifacts" / "weights.safetensors").read_bytes()).hexdigest() == weights.sha256


def test_the_report_of_a_finished_job(server: Server, trained: Trained, tmp_path: Path, capsys) -> None:
    with Client(server.url, server.key) as client:
        report = client.report(trained.job_id)
        metadata = next(item for item in client.artifacts(trained.job_id).items if item.name == "metadata")
        areas = json.loads(client.download_artifact(metadata, tmp_path).read_text())["mask_area_fractions"]
    assert (report.status, report.steps_trained, report.total_steps) == (JobStatus.SUCCEEDED, 2, 2)
    # The core's mask areas (on its grid) are what the stored mask PNGs cover.
    assert [concept.mask_area for concept in report.concepts] == pytest.approx(areas, abs=0.01)
    assert [overlap.concepts for overlap in report.mask_overlaps] == [["ball", "box"]]
    assert sum(point.steps for point in report.loss_curve) == 2
    assert sum(concept.single_steps for concept in report.concepts) <= 2

    assert main(["jobs", "report", trained.job_id, "--server", server.url, "--key", server.key]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"Job {trained.job_id} succeeded, attencraft, 2/2 steps, masks: attention"
    assert lines[1].split()[:3] == ["<ball>", "mask", f"{areas[0]:.2%}"]
    assert lines[-1].startswith("  all steps: L_rec ")


def test_problems_are_typed_exceptions(server: Server, photo: Path) -> None:
    with Client(server.url, server.key) as client:
        with pytest.raises(ApiError) as missing:
            client.get_job("00000000-0000-4000-8000-000000000000")
        with pytest.raises(ApiError) as refused:
            client.create_job(photo, ["cat", "teddy bear"])
        with pytest.raises(InputError) as local:
            client.create_job(photo, ["cat", "dog"], steps=0)  # options are checked before sending
    assert (missing.value.status, missing.value.code) == (404, "job_not_found")
    assert (refused.value.status, refused.value.code) == (422, "invalid_concept_name")
    assert "not a plain word" in str(refused.value) and refused.value.errors[0].field == "concepts.1"
    assert local.value.code == "invalid_options"
    with Client(server.url, "ak_wrong") as stranger, pytest.raises(ApiError) as unauthorized:
        stranger.list_jobs()
    assert (unauthorized.value.status, unauthorized.value.code) == (401, "invalid_api_key")


def test_the_remote_commands(server: Server, trained: Trained, photo: Path, tmp_path: Path, capsys) -> None:
    remote = ["--server", server.url, "--key", server.key]
    assert (
        main(["jobs", "submit", str(photo), "--concept", "ball", "--concept", "box", "--steps", "2000", *remote]) == 0
    )
    submitted = capsys.readouterr().out.strip()
    assert main(["jobs", "cancel", submitted, *remote]) == 0
    assert main(["jobs", "wait", submitted, *remote]) == 1  # it ended, but not succeeded
    assert capsys.readouterr().err.rstrip().endswith(f"Job {submitted} canceled")

    assert main(["jobs", "get", trained.job_id, *remote]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "succeeded"
    assert main(["jobs", "list", "--status", "succeeded", *remote]) == 0
    assert trained.job_id in capsys.readouterr().out
    assert main(["jobs", "cancel", trained.job_id, *remote]) == 2  # it has already finished: a 409, in one line
    assert (
        capsys.readouterr().err
        == f"error: Job {trained.job_id} has already finished (succeeded); it cannot be canceled.\n"
    )
    out = tmp_path / "beach.png"
    generate = ["generate", "--job", trained.job_id, "--prompt", "<ball> on the beach", "--steps", "1", "--width", "64"]
    assert main([*generate, "--height", "64", "--out", str(out), *remote]) == 0
    assert Image.open(out).size == (64, 64)


def test_a_retry_with_the_same_idempotency_key_gets_the_first_job_and_generation(
    server: Server, photo: Path, trained: Trained
) -> None:
    with Client(server.url, server.key) as client:
        first = client.create_job(photo, ["ball", "box"], steps=2000, idempotency_key="client-retry-job")
        retried = client.create_job(photo, ["ball", "box"], steps=2000, idempotency_key="client-retry-job")
        assert retried.id == first.id
        client.cancel(first.id)
        drawn = [
            client.generate(trained.job_id, "a <ball>", steps=1, width=64, height=64, idempotency_key="client-retry")
            for _ in range(2)
        ]
        assert drawn[0].id == drawn[1].id
        with pytest.raises(ApiError) as reused:
            client.generate(trained.job_id, "a <box>", steps=1, width=64, height=64, idempotency_key="client-retry")
        assert reused.value.code == "idempotency_key_reused"


def test_the_async_client(server: Server, photo: Path, trained: Trained) -> None:
    async def flow() -> None:
        async with AsyncClient(server.url, server.key) as client:
            running = await client.create_job(io.BytesIO(photo.read_bytes()), ["ball", "box"], steps=TRAIN_STEPS)
            waiting = await client.create_job(photo, ["ball", "box"], steps=2000)  # queued behind the first
            assert (await waiting.cancel()).status == JobStatus.CANCELED
            assert (await running.wait(timeout_s=300)).status == JobStatus.SUCCEEDED
            assert (await client.report(trained.job_id)).steps_trained == TRAIN_STEPS
            generation = await client.generate(trained.job_id, "a <ball>", steps=1, width=64, height=64)
            assert generation.images[0].startswith(b"\x89PNG")
            with pytest.raises(ApiError) as missing:
                await client.cancel("00000000-0000-4000-8000-000000000000")
            assert missing.value.code == "job_not_found"

    asyncio.run(flow())
