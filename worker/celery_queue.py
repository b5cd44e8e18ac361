"""The JobQueue of the distributed mode: tasks sent by name to the broker, so the API never imports torch."""

from celery import Celery
from kombu.exceptions import OperationalError

from service.queue import QueueUnavailable
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
        self._send(TRAIN_TASK, job_id, TRAINING_QUEUE)

    def submit_generation(self, generation_id: str) -> None:
        self._send(GENERATE_TASK, generation_id, INFERENCE_QUEUE)

    def submit_webhook(self, delivery_id: str) -> None:
        self._send(DELIVER_TASK, delivery_id, WEBHOOKS_QUEUE)

    def _send(self, task: str, row_id: str, queue: str) -> None:
        try:
            self._app.send_task(task, args=[row_id], queue=queue)
        except OperationalError as error:
            raise QueueUnavailable(f"the broker did not take {task} for {row_id}") from error

    def checks(self) -> dict[str, str]:
        """Whether the broker answers; the workers themselves are not asked (they may all be busy)."""
        try:
            with self._app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=BROKER_CHECK_TIMEOUT_S)
        except OperationalError as error:
            return {"queue": f"unavailable: the broker does not answer ({error})"}
        return {"queue": "ok"}
