"""The embedded mode's queue: one background thread in the API process runs jobs and generations one at a time."""

import functools
import logging
import queue
import threading
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

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

    def __init__(self, runner: JobRunner, generations: GenerationRunner) -> None:
        self._handlers: dict[str, Callable[[str], None]] = {"job": runner.run, "generation": generations.run}
        self._tasks: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._consume, name="attencraft-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit_job(self, job_id: str) -> None:
        self._tasks.put(("job", job_id))

    def submit_generation(self, generation_id: str) -> None:
        self._tasks.put(("generation", generation_id))

    def is_ready(self) -> bool:
        return self._thread.is_alive()

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


def model_loader(settings: Settings) -> Callable[[], BaseModel]:
    """Load the base model on first use and keep it warm; a failed load is retried by the next job."""
    device = None if settings.device == "auto" else settings.device
    return functools.cache(lambda: load_base_model(settings.base_model, device=device))


def start_embedded_worker(settings: Settings, sessions: sessionmaker[Session], store: ObjectStore) -> InProcessWorker:
    """Fail jobs a previous process left running, start the thread, and requeue what is still queued."""
    with sessions() as session:
        interrupted = repository.fail_interrupted_jobs(session)
        interrupted += generation_repository.fail_interrupted_generations(session)
        pending = repository.queued_job_ids(session)
        pending_generations = generation_repository.queued_generation_ids(session)
        session.commit()
    if interrupted:
        logger.warning("marked %d interrupted job(s) and generation(s) as failed", len(interrupted))
    load_model = model_loader(settings)  # one warm model for training and generation
    concept_sets = ConceptSetCache(store, settings.concept_cache_bytes)
    worker = InProcessWorker(
        JobRunner(sessions, store, load_model), GenerationRunner(sessions, store, load_model, concept_sets)
    )
    worker.start()
    for job_id in pending:
        worker.submit_job(job_id)
    for generation_id in pending_generations:
        worker.submit_generation(generation_id)
    return worker
