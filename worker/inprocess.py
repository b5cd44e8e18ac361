"""The embedded mode's queue: one background thread in the API process runs jobs one at a time."""

import functools
import logging
import queue
import threading
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from attencraft_core.models import BaseModel, load_base_model
from service import repository
from service.settings import Settings
from service.storage import ObjectStore
from worker.jobs import JobRunner

logger = logging.getLogger(__name__)

_STOP = None


class InProcessWorker:
    """A JobQueue whose consumer is a daemon thread of this process."""

    def __init__(self, runner: JobRunner) -> None:
        self._runner = runner
        self._job_ids: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._consume, name="attencraft-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit_job(self, job_id: str) -> None:
        self._job_ids.put(job_id)

    def is_ready(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout_s: float | None = None) -> None:
        """Finish the running job (cancel it first for a quick stop), then end the thread."""
        self._job_ids.put(_STOP)
        self._thread.join(timeout_s)

    def _consume(self) -> None:
        while (job_id := self._job_ids.get()) is not _STOP:
            try:
                self._runner.run(job_id)
            except Exception:  # keep the only worker thread alive whatever one job did
                logger.exception("the worker could not finish handling job %s", job_id)


def model_loader(settings: Settings) -> Callable[[], BaseModel]:
    """Load the base model on first use and keep it warm; a failed load is retried by the next job."""
    device = None if settings.device == "auto" else settings.device
    return functools.cache(lambda: load_base_model(settings.base_model, device=device))


def start_embedded_worker(settings: Settings, sessions: sessionmaker[Session], store: ObjectStore) -> InProcessWorker:
    """Fail jobs a previous process left running, start the thread, and requeue what is still queued."""
    with sessions() as session:
        interrupted = repository.fail_interrupted_jobs(session)
        pending = repository.queued_job_ids(session)
        session.commit()
    if interrupted:
        logger.warning("marked %d interrupted job(s) as failed", len(interrupted))
    worker = InProcessWorker(JobRunner(sessions, store, model_loader(settings)))
    worker.start()
    for job_id in pending:
        worker.submit_job(job_id)
    return worker
