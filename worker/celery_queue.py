"""The JobQueue of the distributed mode: tasks sent by name to the broker, so the API never imports torch."""

from celery import Celery
from kombu.exceptions import OperationalError

from worker.celery_app import (
    DELIVER_TASK,
    GENERATE_TASK,
    INFERENCE_QUEUE,
    TRAIN_TASK,
    TRAINING_QUEUE,
    WEBHOOKS_QUEUE,
)

BROKER_CHECK_TIMEOUT_S = 2


class CeleryQueue:
    def __init__(self, app: Celery) -> None:
        self._app = app

    def submit_job(self, job_id: str) -> None:
        self._app.send_task(TRAIN_TASK, args=[job_id], queue=TRAINING_QUEUE)

    def submit_generation(self, generation_id: str) -> None:
        self._app.send_task(GENERATE_TASK, args=[generation_id], queue=INFERENCE_QUEUE)

    def submit_webhook(self, delivery_id: str) -> None:
        self._app.send_task(DELIVER_TASK, args=[delivery_id], queue=WEBHOOKS_QUEUE)

    def is_ready(self) -> bool:
        """Whether the broker answers; the workers themselves are not asked (they may all be busy)."""
        try:
            with self._app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=BROKER_CHECK_TIMEOUT_S)
        except OperationalError:
            return False
        return True
