"""Run one training job: load its row, run the core pipeline, report every stage, store the artifacts."""

import functools
import io
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker
from tokenizers import Tokenizer

from attencraft_contract.models import ExportFormat, ImageFit, JobOptions, LossRecord
from attencraft_core.artifacts import ConceptSet
from attencraft_core.config import TrainingConfig
from attencraft_core.errors import AttenCraftError, TrainingCanceled
from attencraft_core.export import export_custom_diffusion
from attencraft_core.models import BaseModel
from attencraft_core.pipeline import ConceptSpec, LearnCallbacks, Stage, learn_concepts
from attencraft_core.training import StepRecord, TrainingCheckpoint
from service import repository
from service.models import Job, JobStatus, utc_now
from service.prompts import TOKENIZER_ARTIFACT
from service.storage import ObjectMissing, ObjectStore, StorageFull, StorageUnavailable, StoredObject
from service.storage.layout import checkpoints_prefix, job_prefix
from worker.heartbeat import Heartbeat
from worker.prior_cache import StorePriorCache

logger = logging.getLogger(__name__)

CONTENT_TYPES = {".png": "image/png", ".json": "application/json", ".csv": "text/csv"}
PROGRESS_INTERVAL_S = 1.0
STORAGE_FULL_MESSAGE = "The store ran out of space while the job wrote its results; submit it again once space is free."
TIMEOUT_MESSAGE = "The job ran longer than the workers' time limit for one job; try fewer steps."
STORAGE_UNAVAILABLE_MESSAGE = "The store could not be reached while the job wrote its results; submit it again."


@dataclass(frozen=True)
class JobInput:
    """What the worker needs of a job row, read once after claiming it."""

    job_id: str
    tenant_id: str
    image_key: str
    concepts: list[ConceptSpec]
    user_mask_keys: list[str]
    config: TrainingConfig
    fit: ImageFit

    @classmethod
    def from_row(cls, job: Job) -> "JobInput":
        options = JobOptions.model_validate(job.options)
        return cls(
            job_id=job.id,
            tenant_id=job.tenant_id,
            image_key=job.image_key,
            concepts=[ConceptSpec(name=c.name, initializer=c.initializer) for c in job.concepts],
            user_mask_keys=[c.user_mask_key for c in job.concepts if c.user_mask_key],
            config=TrainingConfig(recipe=options.recipe(), seed=options.seed),
            fit=options.fit,
        )

    @property
    def prefix(self) -> str:
        return job_prefix(self.tenant_id, self.job_id)


@dataclass
class JobReporter:
    """The core's callbacks, written to the job row as conditional updates fenced by the attempt number."""

    sessions: sessionmaker[Session]
    store: ObjectStore
    job: JobInput
    attempt: int
    runs: list[dict[str, Any]]
    checkpoint_every: int
    stage_timings: dict[str, dict[str, str | None]] = field(default_factory=dict)
    _last_progress_write: float = field(default=0.0, init=False)
    _unreported_losses: list[dict[str, Any]] = field(default_factory=list, init=False)
    _training_started: float = field(default=0.0, init=False)
    _first_step: int | None = field(default=None, init=False)

    def callbacks(self) -> LearnCallbacks:
        return LearnCallbacks(
            on_stage=self.on_stage,
            on_masks=self.on_masks,
            on_heatmaps=self.on_heatmaps,
            on_ratios=self.on_ratios,
            on_step=self.on_step,
            should_stop=self.should_stop,
            on_checkpoint=self.on_checkpoint,
            checkpoint_every=self.checkpoint_every,
        )

    def start(self) -> None:
        self.stage_timings[JobStatus.MASKING.value] = {"started_at": utc_now().isoformat(), "finished_at": None}

    def finish_open_stages(self) -> None:
        for timing in self.stage_timings.values():
            timing["finished_at"] = timing["finished_at"] or utc_now().isoformat()

    def on_stage(self, stage: Stage) -> None:
        if stage.value not in self.stage_timings:
            self.finish_open_stages()
            self.stage_timings[stage.value] = {"started_at": utc_now().isoformat(), "finished_at": None}
        if stage == Stage.TRAINING:
            self._training_started = time.monotonic()
        with self.sessions() as session:
            repository.enter_stage(
                session, self.job.job_id, JobStatus(stage.value), dict(self.stage_timings), attempt=self.attempt
            )
            session.commit()

    def on_masks(self, masks: list[Image.Image]) -> None:
        keys = [self._put_png(f"{self.job.prefix}/masks/{index}.png", mask).key for index, mask in enumerate(masks)]
        with self.sessions() as session:
            repository.record_masks(session, self.job.job_id, self.attempt, keys)
            session.commit()

    def on_heatmaps(self, before: list[Image.Image], after: list[Image.Image]) -> None:
        """Stored next to the masks, as heatmap_<i>_before.png and heatmap_<i>_after.png."""
        stored = [
            (name, self._put_png(f"{self.job.prefix}/masks/{name}.png", picture))
            for moment, pictures in (("before", before), ("after", after))
            for index, picture in enumerate(pictures)
            for name in [repository.heatmap_artifact_name(index, moment)]
        ]
        with self.sessions() as session:
            repository.record_heatmaps(session, self.job.job_id, self.job.tenant_id, self.attempt, stored)
            session.commit()

    def on_ratios(self, ratios: list[float]) -> None:
        with self.sessions() as session:
            repository.record_ratios(session, self.job.job_id, self.attempt, ratios)
            session.commit()

    def on_step(self, record: StepRecord, total: int) -> None:
        """Every step's losses are kept; the row and the event log hear of them at most once per interval."""
        self.runs[-1]["to_step"] = record.step
        self._unreported_losses.append(self._loss_record(record))
        now = time.monotonic()
        if self._first_step is None:  # a resumed attempt starts past step 1: its rate counts from here
            self._first_step = record.step
        if record.step < total and now - self._last_progress_write < PROGRESS_INTERVAL_S:
            return
        self._last_progress_write = now
        steps_done = record.step - self._first_step + 1
        eta_seconds = round((now - self._training_started) / steps_done * (total - record.step), 1)
        with self.sessions() as session:
            repository.record_progress(
                session,
                self.job.job_id,
                self.attempt,
                self.runs,
                step=record.step,
                total=total,
                eta_seconds=eta_seconds,
                losses=self._unreported_losses,
                training_stage=self.job.config.recipe.stage_progress(record.step),
            )
            session.commit()
        self._unreported_losses = []

    def _loss_record(self, record: StepRecord) -> dict[str, Any]:
        subset = [self.job.concepts[index].name for index in record.subset]
        return LossRecord(
            step=record.step,
            subset=subset,
            timestep=record.timestep,
            loss=record.loss,
            reconstruction=record.reconstruction,
            attention=record.attention,
        ).model_dump()

    def on_checkpoint(self, checkpoint: TrainingCheckpoint) -> None:
        """Store it under a new key (objects are never overwritten), point the job at it, drop the previous one."""
        key = f"{checkpoints_prefix(self.job.tenant_id, self.job.job_id)}{self.attempt}-{checkpoint.step:06d}.pt"
        self.store.put(key, io.BytesIO(checkpoint.to_bytes()), content_type="application/octet-stream")
        with self.sessions() as session:
            replaced = repository.record_checkpoint(
                session, self.job.job_id, self.attempt, key, checkpoint.step, self.runs
            )
            session.commit()
        if replaced:
            self.store.delete_prefix(replaced)

    def should_stop(self) -> bool:
        with self.sessions() as session:
            return repository.should_stop(session, self.job.job_id, self.attempt)

    def _put_png(self, key: str, picture: Image.Image) -> StoredObject:
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        buffer.seek(0)
        return self.store.put(key, buffer, content_type="image/png")


class JobRunner:
    """Runs jobs one at a time against a base model loaded once and kept warm.

    Each run is an attempt: it claims the job, beats while it works and checkpoints every ``checkpoint_every``
    steps; an attempt of a job whose previous worker died resumes from the last checkpoint.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        store: ObjectStore,
        load_model: Callable[[], BaseModel],
        *,
        checkpoint_every: int = 0,
        heartbeat_interval_s: float = 5.0,
    ) -> None:
        self.sessions = sessions
        self.store = store
        self.load_model = load_model
        self.checkpoint_every = checkpoint_every
        self.heartbeat_interval_s = heartbeat_interval_s

    def run(self, job_id: str) -> None:
        """Run the job to a terminal state and record it in the row; a failure of the job never raises."""
        with self.sessions() as session:
            attempt = repository.claim_job(session, job_id)
            if attempt is None:
                logger.info("job %s is no longer queued; skipping it", job_id)
                return
            session.commit()
            row = session.get_one(Job, job_id)
            job = JobInput.from_row(row)
            checkpoint_key = row.checkpoint_key
            reporter = JobReporter(self.sessions, self.store, job, attempt, list(row.runs), self.checkpoint_every)
        reporter.start()
        beat = functools.partial(repository.beat, job_id=job_id, attempt=attempt)
        with Heartbeat(self.sessions, beat, f"job {job_id}", self.heartbeat_interval_s):
            try:
                self._train_and_store(job, reporter, checkpoint_key)
            except TrainingCanceled:
                self._cancel(job, reporter)
            except AttenCraftError as error:
                self._fail(job, reporter, error.code, str(error))
            except SoftTimeLimitExceeded:  # Celery's task_soft_time_limit (ATTENCRAFT_TASK_SOFT_TIME_LIMIT_SECONDS)
                self._fail(job, reporter, "timeout", TIMEOUT_MESSAGE)
            except StorageFull:
                self._fail(job, reporter, "storage_full", STORAGE_FULL_MESSAGE)
            except StorageUnavailable:
                self._fail(job, reporter, "storage_unavailable", STORAGE_UNAVAILABLE_MESSAGE)
            except Exception:  # the worker's last line of defence: record the failure, keep serving
                logger.exception("job %s failed unexpectedly", job_id)
                self._fail(job, reporter, "internal_error", "The job failed because of an internal error.")

    def _train_and_store(self, job: JobInput, reporter: JobReporter, checkpoint_key: str | None) -> None:
        image = self._read_image(job.image_key)  # the core applies EXIF orientation and converts to RGB
        user_masks = [self._read_image(key) for key in job.user_mask_keys] or None
        resume = self._read_checkpoint(checkpoint_key, reporter) if checkpoint_key else None
        if reporter.attempt > 1:  # a previous attempt died: its masks are recomputed, partial artifacts rewritten
            self._remove_outputs(job, include_masks=True)
        if resume is not None:
            logger.info("job %s attempt %d resumes from step %d", job.job_id, reporter.attempt, resume.step)
        model = self.load_model()
        concept_set = learn_concepts(
            model,
            image,
            job.concepts,
            job.config,
            user_masks=user_masks,
            callbacks=reporter.callbacks(),
            resume=resume,
            fit=job.fit,
            prior_cache=StorePriorCache(self.store),
        )
        with tempfile.TemporaryDirectory(prefix="attencraft-job-") as scratch:
            stored = [
                (name, self._put_file(f"{job.prefix}/artifacts/{path.name}", path))
                for name, path in concept_set.save(Path(scratch)).items()
            ]
            stored += self._store_generation_aids(job, model, concept_set, Path(scratch))
        reporter.finish_open_stages()
        # Before the success is committed: a worker killed after that commit would leave the checkpoints forever;
        # killed before it, the next attempt finds no checkpoint and trains from the start.
        self._remove_checkpoints(job)
        with self.sessions() as session:
            won = repository.finish_job(
                session, job.job_id, job.tenant_id, stored, reporter.stage_timings, attempt=reporter.attempt
            )
            session.commit()
        if not won:
            raise TrainingCanceled()

    def _read_checkpoint(self, key: str, reporter: JobReporter) -> TrainingCheckpoint | None:
        """The checkpoint to resume from; None when it is gone (the previous attempt removed it as it finished, then
        died before recording the success): this attempt trains from the start."""
        try:
            return TrainingCheckpoint.from_bytes(self.store.read_bytes(key))
        except ObjectMissing:
            logger.warning("checkpoint %s is gone; job %s trains from the start", key, reporter.job.job_id)
            reporter.runs[-1]["from_step"] = reporter.runs[-1]["to_step"] = 0
            return None

    def _store_generation_aids(
        self, job: JobInput, model: BaseModel, concept_set: ConceptSet, scratch: Path
    ) -> list[tuple[str, StoredObject]]:
        """The tokenizer the API counts prompt tokens with, and the diffusers export (it needs the base weights)."""
        tokenizer = Tokenizer.from_str(model.pipeline.tokenizer.backend_tokenizer.to_str())
        tokenizer.enable_truncation(model.pipeline.tokenizer.model_max_length)  # the API reads the limit here
        tokenizer_path = scratch / "tokenizer.json"
        tokenizer_path.write_text(tokenizer.to_str(), encoding="utf-8")
        stored = [(TOKENIZER_ARTIFACT, self._put_file(f"{job.prefix}/artifacts/{tokenizer_path.name}", tokenizer_path))]
        export_format = ExportFormat.DIFFUSERS.value
        for path in export_custom_diffusion(model, concept_set.weights(), scratch / export_format).values():
            key = f"{job.prefix}/export/{export_format}/{path.name}"
            stored.append((f"{export_format}/{path.name}", self._put_file(key, path)))
        return stored

    def _cancel(self, job: JobInput, reporter: JobReporter) -> None:
        """End the job canceled and remove its outputs; nothing, when another attempt took the job over."""
        reporter.finish_open_stages()
        with self.sessions() as session:
            canceled = repository.mark_canceled(session, job.job_id, reporter.attempt, reporter.stage_timings)
            if canceled:
                repository.forget_masks(session, job.job_id)
            session.commit()
        if canceled:
            self._remove_outputs(job, include_masks=True)
            self._remove_checkpoints(job)

    def _fail(self, job: JobInput, reporter: JobReporter, code: str, message: str) -> None:
        reporter.finish_open_stages()
        with self.sessions() as session:
            failed = repository.fail_job(
                session, job.job_id, code, message, reporter.stage_timings, attempt=reporter.attempt
            )
            session.commit()
        if failed:
            try:
                self._remove_outputs(job, include_masks=False)
                self._remove_checkpoints(job)
            except StorageUnavailable:  # the store is what failed the job: its partial outputs stay behind
                logger.warning("could not remove the outputs of failed job %s", job.job_id, exc_info=True)

    def _remove_outputs(self, job: JobInput, *, include_masks: bool) -> None:
        self.store.delete_prefix(f"{job.prefix}/artifacts/")
        self.store.delete_prefix(f"{job.prefix}/export/")
        if include_masks:
            self.store.delete_prefix(f"{job.prefix}/masks/")

    def _remove_checkpoints(self, job: JobInput) -> None:
        self.store.delete_prefix(checkpoints_prefix(job.tenant_id, job.job_id))

    def _read_image(self, key: str) -> Image.Image:
        image = Image.open(io.BytesIO(self.store.read_bytes(key)))
        image.load()
        return image

    def _put_file(self, key: str, path: Path) -> StoredObject:
        with path.open("rb") as source:
            content_type = CONTENT_TYPES.get(path.suffix, "application/octet-stream")
            return self.store.put(key, source, content_type=content_type)
