"""Run one training job: load its row, run the core pipeline, report every stage, store the artifacts."""

import io
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from attencraft_core.config import TrainingConfig
from attencraft_core.errors import AttenCraftError, TrainingCanceled
from attencraft_core.models import BaseModel
from attencraft_core.pipeline import ConceptSpec, LearnCallbacks, Stage, learn_concepts
from attencraft_core.training import StepRecord
from service import repository
from service.models import Job, JobStatus, utc_now
from service.storage import ObjectStore, StoredObject
from service.storage.layout import job_prefix

logger = logging.getLogger(__name__)

CONTENT_TYPES = {".png": "image/png", ".json": "application/json", ".csv": "text/csv"}
PROGRESS_INTERVAL_S = 1.0


@dataclass(frozen=True)
class JobInput:
    """What the worker needs of a job row, read once after claiming it."""

    job_id: str
    tenant_id: str
    image_key: str
    concepts: list[ConceptSpec]
    user_mask_keys: list[str]
    config: TrainingConfig

    @classmethod
    def from_row(cls, job: Job) -> "JobInput":
        return cls(
            job_id=job.id,
            tenant_id=job.tenant_id,
            image_key=job.image_key,
            concepts=[ConceptSpec(name=c.name, initializer=c.initializer) for c in job.concepts],
            user_mask_keys=[c.user_mask_key for c in job.concepts if c.user_mask_key],
            config=TrainingConfig(steps=job.options["steps"], seed=job.options["seed"]),
        )

    @property
    def prefix(self) -> str:
        return job_prefix(self.tenant_id, self.job_id)


@dataclass
class JobReporter:
    """The core's callbacks, written to the job row as conditional updates."""

    sessions: sessionmaker[Session]
    store: ObjectStore
    job: JobInput
    stage_timings: dict[str, dict[str, str | None]] = field(default_factory=dict)
    _last_progress_write: float = field(default=0.0, init=False)

    def callbacks(self) -> LearnCallbacks:
        return LearnCallbacks(
            on_stage=self.on_stage,
            on_masks=self.on_masks,
            on_ratios=self.on_ratios,
            on_step=self.on_step,
            should_stop=self.should_stop,
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
        with self.sessions() as session:
            repository.enter_stage(session, self.job.job_id, JobStatus(stage.value), dict(self.stage_timings))
            session.commit()

    def on_masks(self, masks: list[Image.Image]) -> None:
        keys = [self._put_png(f"{self.job.prefix}/masks/{index}.png", mask) for index, mask in enumerate(masks)]
        with self.sessions() as session:
            repository.record_masks(session, self.job.job_id, keys)
            session.commit()

    def on_ratios(self, ratios: list[float]) -> None:
        with self.sessions() as session:
            repository.record_ratios(session, self.job.job_id, ratios)
            session.commit()

    def on_step(self, record: StepRecord, total: int) -> None:
        now = time.monotonic()
        if record.step < total and now - self._last_progress_write < PROGRESS_INTERVAL_S:
            return
        self._last_progress_write = now
        with self.sessions() as session:
            repository.record_progress(session, self.job.job_id, record.step, total)
            session.commit()

    def should_stop(self) -> bool:
        with self.sessions() as session:
            return repository.should_stop(session, self.job.job_id)

    def _put_png(self, key: str, picture: Image.Image) -> str:
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        buffer.seek(0)
        return self.store.put(key, buffer, content_type="image/png").key


class JobRunner:
    """Runs jobs one at a time against a base model loaded once and kept warm."""

    def __init__(
        self, sessions: sessionmaker[Session], store: ObjectStore, load_model: Callable[[], BaseModel]
    ) -> None:
        self.sessions = sessions
        self.store = store
        self.load_model = load_model

    def run(self, job_id: str) -> None:
        """Run the job to a terminal state and record it in the row; a failure of the job never raises."""
        with self.sessions() as session:
            if not repository.claim_job(session, job_id):
                logger.info("job %s is no longer queued; skipping it", job_id)
                return
            session.commit()
            job = JobInput.from_row(session.get_one(Job, job_id))
        reporter = JobReporter(self.sessions, self.store, job)
        reporter.start()
        try:
            self._train_and_store(job, reporter)
        except TrainingCanceled:
            self._cancel(job, reporter)
        except AttenCraftError as error:
            self._fail(job, reporter, error.code, str(error))
        except Exception:  # the worker's last line of defence: record the failure, keep serving
            logger.exception("job %s failed unexpectedly", job_id)
            self._fail(job, reporter, "internal_error", "The job failed because of an internal error.")

    def _train_and_store(self, job: JobInput, reporter: JobReporter) -> None:
        image = self._read_image(job.image_key)  # the core applies EXIF orientation and converts to RGB
        user_masks = [self._read_image(key) for key in job.user_mask_keys] or None
        concept_set = learn_concepts(
            self.load_model(), image, job.concepts, job.config, user_masks=user_masks, callbacks=reporter.callbacks()
        )
        with tempfile.TemporaryDirectory(prefix="attencraft-job-") as scratch:
            stored = [
                (name, self._put_file(f"{job.prefix}/artifacts/{path.name}", path))
                for name, path in concept_set.save(Path(scratch)).items()
            ]
        reporter.finish_open_stages()
        with self.sessions() as session:
            won = repository.finish_job(session, job.job_id, job.tenant_id, stored, reporter.stage_timings)
            session.commit()
        if not won:
            raise TrainingCanceled()

    def _cancel(self, job: JobInput, reporter: JobReporter) -> None:
        self._remove_outputs(job, include_masks=True)
        reporter.finish_open_stages()
        with self.sessions() as session:
            repository.forget_masks(session, job.job_id)
            repository.mark_canceled(session, job.job_id, reporter.stage_timings)
            session.commit()

    def _fail(self, job: JobInput, reporter: JobReporter, code: str, message: str) -> None:
        self._remove_outputs(job, include_masks=False)
        reporter.finish_open_stages()
        with self.sessions() as session:
            repository.fail_job(session, job.job_id, code, message, reporter.stage_timings)
            session.commit()

    def _remove_outputs(self, job: JobInput, *, include_masks: bool) -> None:
        self.store.delete_prefix(f"{job.prefix}/artifacts/")
        if include_masks:
            self.store.delete_prefix(f"{job.prefix}/masks/")

    def _read_image(self, key: str) -> Image.Image:
        image = Image.open(io.BytesIO(self.store.read_bytes(key)))
        image.load()
        return image

    def _put_file(self, key: str, path: Path) -> StoredObject:
        with path.open("rb") as source:
            content_type = CONTENT_TYPES.get(path.suffix, "application/octet-stream")
            return self.store.put(key, source, content_type=content_type)
