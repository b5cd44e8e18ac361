"""A periodic sweep in each worker process (and in the embedded API): the work no message announces.

Jobs whose heartbeat went stale (their worker died: kill -9, OOM, node loss) go back to queued, keeping their
checkpoint, and are sent again, as are jobs left queued as long (their message may have died with a worker);
generations whose heartbeat went stale fail ``worker_lost``; webhook deliveries whose next attempt is due are
handed to a sender; expired idempotency keys are deleted. Every sweep claims with conditional updates, so any
number of processes may sweep the same database.
"""

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from service import generation_repository, repository
from service.idempotency import purge_expired_keys
from service.models import utc_now
from service.settings import Settings

logger = logging.getLogger(__name__)


class Sweeper:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        *,
        submit_webhook: Callable[[str], None],
        submit_job: Callable[[str], None] | None = None,
    ) -> None:
        """Without submit_job, jobs are not swept (the embedded mode requeues interrupted jobs at start instead)."""
        self._sessions = sessions
        self._settings = settings
        self._submit_webhook = submit_webhook
        self._submit_job = submit_job
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="attencraft-sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()

    def sweep(self) -> None:
        stale_cutoff = utc_now() - timedelta(seconds=self._settings.stale_after_seconds)
        with self._sessions() as session:
            for generation_id in generation_repository.fail_orphaned_generations(session, stale_cutoff):
                logger.warning("generation %s went stale (its worker stopped): failed worker_lost", generation_id)
            session.commit()
        if self._submit_job is not None:
            with self._sessions() as session:
                requeued = repository.requeue_stale_jobs(
                    session, stale_cutoff, max_attempts=self._settings.max_attempts
                )
                for job_id in requeued:
                    logger.warning("job %s went stale: sending it again, to resume from its last checkpoint", job_id)
                    self._submit_job(job_id)
                for job_id in repository.touch_long_queued_jobs(session, stale_cutoff):
                    logger.warning("job %s has waited unclaimed: sending it again, its message may be lost", job_id)
                    self._submit_job(job_id)
                # After the sends: a failed send rolls the requeue back, so the next sweep tries again. A worker
                # that gets the message first blocks on the row lock, then claims the committed, queued row.
                session.commit()
        with self._sessions() as session:
            purge_expired_keys(session, utc_now())
            delivery_ids = repository.claim_due_deliveries(
                session, timedelta(seconds=self._settings.webhook_lease_seconds)
            )
            session.commit()
        for delivery_id in delivery_ids:
            self._submit_webhook(delivery_id)

    def _run(self) -> None:
        while not self._stopped.wait(self._settings.sweep_interval_seconds):
            try:
                self.sweep()
            except Exception:  # the database or broker is away: the next sweep tries again
                logger.warning("sweep failed", exc_info=True)
