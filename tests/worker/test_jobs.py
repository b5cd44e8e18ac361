"""The worker glue runs the core on a job row: stages, progress, masks, ratios, artifacts, terminal states."""

import io
import json
import secrets
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from celery.exceptions import SoftTimeLimitExceeded
from PIL import Image
from safetensors.torch import load_file
from sqlalchemy.orm import Session, sessionmaker

from attencraft_core.models import BaseModel
from service import repository
from service.event_log import events_after, loss_history
from service.models import Job, JobStatus, utc_now
from service.repository import request_cancel
from service.settings import Settings
from service.storage import LocalDirectoryStore, StoredObject
from tests.service.infrastructure import fill, own_s3_store, small_tmpfs
from tests.worker.conftest import TRAIN_STEPS, insert_queued_job
from worker.inference import GenerationRunner
from worker.inprocess import InProcessWorker, WarmModel
from worker.jobs import STORAGE_UNAVAILABLE_MESSAGE, JobRunner


def _job(sessions: sessionmaker[Session], job_id: str) -> Job:
    with sessions() as session:
        job = session.get_one(Job, job_id)
        _ = job.artifacts, job.concepts
        return job


def _png(size: tuple[int, int], *, box: tuple[int, int, int, int] | None) -> bytes:
    mask = Image.new("L", size, 0)
    if box is not None:
        mask.paste(255, box)
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_job_runs_to_succeeded_with_every_artifact(
    runner: JobRunner, sessions: sessionmaker[Session], store: LocalDirectoryStore, queued_job: Callable[..., str]
) -> None:
    job_id = queued_job()

    runner.run(job_id)

    job = _job(sessions, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error_message
    assert (job.progress_step, job.progress_total) == (TRAIN_STEPS, TRAIN_STEPS)
    assert list(job.stage_timings) == ["masking", "estimating", "training", "saving"]
    assert all(timing["finished_at"] for timing in job.stage_timings.values())
    assert job.started_at and job.finished_at and job.error_code is None
    ratios = [concept.ratio for concept in job.concepts]
    assert all(0 < ratio < 1 for ratio in ratios) and abs(sum(ratios) - 1) < 1e-5
    for concept in job.concepts:
        assert Image.open(io.BytesIO(store.read_bytes(concept.mask_key))).mode == "L"

    names = {artifact.name for artifact in job.artifacts}
    assert {"weights", "metadata", "overlay", "loss_curve", "mask_0", "mask_1"} <= names
    artifacts = {artifact.name: artifact for artifact in job.artifacts}
    for index, concept in enumerate(job.concepts):  # each mask is where its concept's walked attention wins
        mask = np.asarray(Image.open(io.BytesIO(store.read_bytes(concept.mask_key)))) > 127
        before, after = (
            np.asarray(Image.open(io.BytesIO(store.read_bytes(artifacts[f"heatmap_{index}_{moment}"].key))))
            for moment in ("before", "after")
        )
        assert before.shape == after.shape == mask.shape
        assert after[mask].mean() > after[~mask].mean()
        assert artifacts[f"heatmap_{index}_after"].key.rsplit("/", 1)[0] == concept.mask_key.rsplit("/", 1)[0]
    with sessions() as session:
        events = [event.type for event in events_after(session, job_id, 0)]
    assert events[:5] == ["status", "status", "heatmaps", "masks", "status"]  # queued, masking, ..., estimating
    assert events[-1] == "end" and "ratios" in events and "progress" in events
    with sessions() as session:
        history = loss_history(session, job_id)
    assert [record.step for record in history] == list(range(1, TRAIN_STEPS + 1))
    assert all(record.subset and record.subset[0] in ("ball", "box") for record in history)
    assert load_file(str(store.path_for(artifacts["weights"].key)))["embeddings"].shape[0] == 2
    metadata = json.loads(store.read_bytes(artifacts["metadata"].key))
    assert metadata["class_names"] == ["ball", "box"] and metadata["initializers"] == ["ball", "cube"]


def test_uploaded_masks_replace_mask_creation(
    runner: JobRunner, sessions: sessionmaker[Session], queued_job: Callable[..., str]
) -> None:
    size = (256, 256)
    job_id = queued_job(user_masks=[_png(size, box=(0, 0, 128, 256)), _png(size, box=(128, 0, 256, 256))])

    runner.run(job_id)

    job = _job(sessions, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error_message
    assert not any(artifact.name.startswith("heatmap_") for artifact in job.artifacts)  # no attention was computed


def test_a_core_error_fails_the_job_with_its_code(
    runner: JobRunner, sessions: sessionmaker[Session], store: LocalDirectoryStore, queued_job: Callable[..., str]
) -> None:
    size = (256, 256)
    job_id = queued_job(user_masks=[_png(size, box=(0, 0, 128, 256)), _png(size, box=None)])

    runner.run(job_id)

    job = _job(sessions, job_id)
    assert job.status == JobStatus.FAILED
    assert job.error_code == "concept_not_localized"
    assert "'box'" in job.error_message
    assert job.artifacts == []


def test_a_job_canceled_while_queued_never_runs(
    runner: JobRunner, sessions: sessionmaker[Session], queued_job: Callable[..., str]
) -> None:
    job_id = queued_job()
    with sessions() as session:
        request_cancel(session, session.get_one(Job, job_id))
        session.commit()

    runner.run(job_id)

    job = _job(sessions, job_id)
    assert job.status == JobStatus.CANCELED and job.started_at is None


def test_cancel_during_training_ends_canceled_without_outputs(
    runner: JobRunner,
    generation_runner: GenerationRunner,
    sessions: sessionmaker[Session],
    store: LocalDirectoryStore,
    queued_job: Callable[..., str],
) -> None:
    job_id = queued_job(steps=2000)
    model = WarmModel(Settings(base_model="tiny", device="cpu"))  # not loaded: the runners bring theirs
    worker = InProcessWorker(runner, generation_runner, model)
    worker.start()
    worker.submit_job(job_id)
    while (job := _job(sessions, job_id)).status != JobStatus.TRAINING:
        assert not job.status.is_terminal, job.error_message
        time.sleep(0.2)
    with sessions() as session:
        request_cancel(session, session.get_one(Job, job_id))
        session.commit()
    worker.stop()

    job = _job(sessions, job_id)
    assert job.status == JobStatus.CANCELED
    assert job.progress_step < 2000
    assert job.artifacts == [] and all(concept.mask_key is None for concept in job.concepts)
    assert [path.name for path in store.root.rglob("*") if path.is_file()] == ["image.png"]


def test_a_job_whose_store_fills_up_fails_storage_full_and_leaves_no_scratch_files(
    sessions: sessionmaker[Session], tiny_model: BaseModel, tmp_path: Path
) -> None:
    with small_tmpfs(tmp_path / "disk", size_kib=1024) as disk:
        store = LocalDirectoryStore(disk / "store", secrets.token_bytes(32))
        job_id = insert_queued_job(sessions, store)
        fill(disk)  # the input is stored; masks, checkpoints and artifacts find no room

        JobRunner(sessions, store, lambda: tiny_model).run(job_id)

        job = _job(sessions, job_id)
        assert (job.status, job.error_code) == (JobStatus.FAILED, "storage_full")
        assert str(disk) not in job.error_message
        assert list(disk.rglob(".upload-*")) == []


def test_mask_and_ratio_writes_of_a_stale_attempt_are_dropped(
    sessions: sessionmaker[Session], queued_job: Callable[..., str]
) -> None:
    job_id = queued_job()
    with sessions() as session:
        assert repository.claim_job(session, job_id) == 1
        session.commit()
        assert repository.requeue_stale_jobs(session, utc_now() + timedelta(seconds=1), max_attempts=3) == [job_id]
        assert repository.claim_job(session, job_id) == 2  # the first worker stalled; the job runs again
        session.commit()
        assert repository.record_masks(session, job_id, 2, ["live-0.png", "live-1.png"])
        assert repository.record_ratios(session, job_id, 2, [0.6, 0.4])
        assert not repository.record_masks(session, job_id, 1, ["late-0.png", "late-1.png"])  # the stalled one
        assert not repository.record_ratios(session, job_id, 1, [0.1, 0.9])
        live, late = (
            [(f"heatmap_0_{when}", StoredObject(f"{who}-{when}.png", 1, "0" * 64, "x")) for when in ("before", "after")]
            for who in ("live", "late")
        )
        tenant_id = session.get_one(Job, job_id).tenant_id
        assert repository.record_heatmaps(session, job_id, tenant_id, 2, live)
        assert not repository.record_heatmaps(session, job_id, tenant_id, 1, late)
        session.commit()
    job = _job(sessions, job_id)
    assert [(concept.mask_key, concept.ratio) for concept in job.concepts] == [("live-0.png", 0.6), ("live-1.png", 0.4)]
    assert sorted(artifact.key for artifact in job.artifacts) == ["live-after.png", "live-before.png"]


def test_a_job_whose_worker_keeps_dying_fails_too_many_attempts(
    sessions: sessionmaker[Session], queued_job: Callable[..., str]
) -> None:
    job_id = queued_job()
    later = utc_now() + timedelta(seconds=1)
    with sessions() as session:
        for attempt in (1, 2):
            assert repository.claim_job(session, job_id) == attempt
            assert repository.requeue_stale_jobs(session, later, max_attempts=3) == [job_id]
        assert repository.claim_job(session, job_id) == 3
        assert repository.requeue_stale_jobs(session, later, max_attempts=3) == []
        session.commit()
    job = _job(sessions, job_id)
    assert (job.status, job.error_code) == (JobStatus.FAILED, "too_many_attempts")


def test_a_job_past_the_soft_time_limit_fails_timeout(
    sessions: sessionmaker[Session], store: LocalDirectoryStore, queued_job: Callable[..., str]
) -> None:
    def past_the_limit() -> BaseModel:  # what Celery's SIGUSR1 handler raises inside the running task
        raise SoftTimeLimitExceeded()

    job_id = queued_job()
    JobRunner(sessions, store, past_the_limit).run(job_id)

    job = _job(sessions, job_id)
    assert (job.status, job.error_code) == (JobStatus.FAILED, "timeout")


def test_a_job_whose_s3_store_goes_away_fails_storage_unavailable_with_a_sentence(
    sessions: sessionmaker[Session], tiny_model: BaseModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with own_s3_store(tmp_path / "seaweedfs", monkeypatch) as (server, store):
        job_id = insert_queued_job(sessions, store)

        def outage_then_model() -> BaseModel:  # the store goes away as the job starts
            server.stop()
            return tiny_model

        JobRunner(sessions, store, outage_then_model).run(job_id)

    job = _job(sessions, job_id)
    assert (job.status, job.error_code) == (JobStatus.FAILED, "storage_unavailable")
    assert job.error_message == STORAGE_UNAVAILABLE_MESSAGE


def test_checkpoints_are_removed_before_the_success_is_recorded(
    sessions: sessionmaker[Session], store: LocalDirectoryStore, tiny_model: BaseModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker killed between the two would otherwise leave the checkpoints in the store for good."""
    finish_job = repository.finish_job
    left_at_success: list[Path] = []

    def finish_noting_checkpoints(*args: Any, **kwargs: Any) -> bool:
        left_at_success.extend(path for path in store.root.rglob("*.pt"))
        return finish_job(*args, **kwargs)

    monkeypatch.setattr(repository, "finish_job", finish_noting_checkpoints)
    job_id = insert_queued_job(sessions, store)
    JobRunner(sessions, store, lambda: tiny_model, checkpoint_every=2).run(job_id)

    assert _job(sessions, job_id).status == JobStatus.SUCCEEDED
    assert left_at_success == []


def test_an_attempt_whose_checkpoint_is_gone_trains_from_the_start(
    sessions: sessionmaker[Session], store: LocalDirectoryStore, tiny_model: BaseModel, queued_job: Callable[..., str]
) -> None:
    job_id = queued_job()
    with sessions() as session:  # attempt 1 recorded a checkpoint, removed it as it finished, and died
        assert repository.claim_job(session, job_id) == 1
        runs = [{"attempt": 1, "from_step": 0, "to_step": 4}]
        assert (
            repository.record_checkpoint(session, job_id, 1, "tenants/x/jobs/y/checkpoints/1-000004.pt", 4, runs)
            is None
        )
        assert repository.requeue_stale_jobs(session, utc_now() + timedelta(seconds=1), max_attempts=3) == [job_id]
        session.commit()

    JobRunner(sessions, store, lambda: tiny_model).run(job_id)

    job = _job(sessions, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error_message
    assert job.runs[-1] == {"attempt": 2, "from_step": 0, "to_step": TRAIN_STEPS}
