"""The embedded mode's queue: one background thread in the API process runs jobs and generations one at a time."""

import logging
import queue
import threading
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from attencraft_core.errors import AttenCraftError
from attencraft_core.model_spec import Precision, RunOptions
from attencraft_core.models import BaseModel, load_base_model
from service import generation_repository, repository
from service.settings import Settings
from service.storage import ObjectStore
from worker.inference import ConceptSetCache, GenerationRunner
from worker.jobs import JobRunner

logger = logging.getLogger(__name__)

_STOP = None


class InProcessWorker:
    """A JobQueue whose consumer is a daemon thread of this process (one task at a time: one accelerator)."""

    def __init__(self, runner: JobRunner, generations: GenerationRunner, model: "WarmModel") -> None:
        self.model = model
        self._handlers: dict[str, Callable[[str], None]] = {"job": runner.run, "generation": generations.run}
        self._tasks: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._consume, name="attencraft-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit_job(self, job_id: str) -> None:
        self._tasks.put(("job", job_id))

    def submit_generation(self, generation_id: str) -> None:
        self._tasks.put(("generation", generation_id))

    def checks(self) -> dict[str, str]:
        return {"queue": "ok" if self._thread.is_alive() else "unavailable: the worker thread stopped"} | {
            "model": self.model.state()
        }

    def stop(self, timeout_s: float | None = None) -> None:
        """Finish the running task (cancel a job first for a quick stop), then end the thread."""
        self._tasks.put(_STOP)
        self._thread.join(timeout_s)

    def _consume(self) -> None:
        while (task := self._tasks.get()) is not _STOP:
            kind, object_id = task
            try:
                self._handlers[kind](object_id)
            except Exception:  # keep the only worker thread alive whatever one task did
                logger.exception("the worker could not finish handling %s %s", kind, object_id)


class WarmModel:
    """The settings' base model, loaded once per process and kept warm.

    ``start()`` loads it in the background (the embedded server starts at once and reports "loading" on /readyz);
    calling the object waits for the load. A failed load stays failed, with the reason, until the process restarts:
    every job then fails with that sentence instead of a vague one.
    """

    def __init__(self, settings: Settings) -> None:
        self.spec = settings.base_model
        self.device = settings.device
        self.options = RunOptions(
            precision=Precision(settings.precision),
            gradient_checkpointing=settings.gradient_checkpointing,
            compile_unet=settings.compile_unet,
        )
        self._lock = threading.Lock()
        self._loaded = threading.Event()
        self._thread: threading.Thread | None = None
        self._model: BaseModel | None = None
        self._error: AttenCraftError | None = None

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._load, name="attencraft-model-load", daemon=True)
                self._thread.start()

    def __call__(self) -> BaseModel:
        self.start()
        self._loaded.wait()
        if self._error is not None:
            raise self._error
        assert self._model is not None
        return self._model

    def wait(self, timeout_s: float | None = None) -> str:
        """Wait for the load to end (or the timeout); the state then."""
        self.start()
        self._loaded.wait(timeout_s)
        return self.state()

    def state(self) -> str:
        """'ok', 'loading ...' or 'failed: <why>': the readiness of the model."""
        if not self._loaded.is_set():
            return f"loading {self.spec} on {self.device}"
        return "ok" if self._error is None else f"failed: {self._error}"

    def _load(self) -> None:
        try:
            self._model = load_base_model(self.spec, device=self.device, options=self.options)
        except AttenCraftError as error:
            self._error = error
        except Exception as error:  # a CUDA or I/O fault: reported on /readyz and by every job, never lost
            logger.exception("the base model %s could not be loaded", self.spec)
            self._error = AttenCraftError(f"the base model {self.spec!r} could not be loaded on {self.device}: {error}")
        finally:
            self._loaded.set()


def start_embedded_worker(settings: Settings, sessions: sessionmaker[Session], store: ObjectStore) -> InProcessWorker:
    """Requeue the jobs a previous process left running (each resumes from its last checkpoint), fail the
    generations it left drawing, start the thread, and hand it everything queued."""
    with sessions() as session:
        resumed = repository.requeue_interrupted_jobs(session, max_attempts=settings.max_attempts)
        lost = generation_repository.fail_orphaned_generations(session, None)
        pending = repository.queued_job_ids(session)
        pending_generations = generation_repository.queued_generation_ids(session)
        session.commit()
    if resumed:
        logger.warning("resuming %d job(s) the previous run left running from their last checkpoint", len(resumed))
    if lost:
        logger.warning("failed %d generation(s) the previous run left drawing", len(lost))
    model = WarmModel(settings)  # one warm model for training and generation, loading from now on
    model.start()
    concept_sets = ConceptSetCache(store, settings.concept_cache_bytes)
    heartbeat_s = settings.heartbeat_interval_seconds
    runner = JobRunner(
        sessions, store, model, checkpoint_every=settings.checkpoint_every, heartbeat_interval_s=heartbeat_s
    )
    generations = GenerationRunner(sessions, store, model, concept_sets, heartbeat_interval_s=heartbeat_s)
    worker = InProcessWorker(runner, generations, model)
    worker.start()
    for job_id in pending:
        worker.submit_job(job_id)
    for generation_id in pending_generations:
        worker.submit_generation(generation_id)
    return worker
