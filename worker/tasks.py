"""Celery tasks of the ``training`` and ``webhooks`` queues, and the sweep each worker's main process runs.

Tasks carry ids only and are idempotent: the training task claims its job with a conditional update, so a
redelivered message for a job that is running, finished or canceled does nothing.
"""

import functools
from typing import Any

from celery.signals import worker_ready, worker_shutdown

from service.db import create_db_engine, create_session_factory
from service.settings import get_settings
from worker.celery_app import DELIVER_TASK, TRAIN_TASK, app
from worker.celery_queue import CeleryQueue
from worker.deliveries import deliver
from worker.jobs import JobRunner
from worker.runtime import worker_runtime
from worker.sweeper import Sweeper

DELIVERY_TIME_LIMIT_MARGIN_S = 30


@functools.cache
def job_runner() -> JobRunner:
    runtime = worker_runtime()
    return JobRunner(
        runtime.sessions,
        runtime.store,
        runtime.load_model,
        checkpoint_every=runtime.settings.checkpoint_every,
        heartbeat_interval_s=runtime.settings.heartbeat_interval_seconds,
    )


@app.task(name=TRAIN_TASK)
def train(job_id: str) -> None:
    job_runner().run(job_id)


@app.task(
    name=DELIVER_TASK,
    soft_time_limit=get_settings().webhook_timeout_seconds + DELIVERY_TIME_LIMIT_MARGIN_S,
    time_limit=get_settings().webhook_timeout_seconds + 2 * DELIVERY_TIME_LIMIT_MARGIN_S,
)
def deliver_webhook(delivery_id: str) -> None:
    runtime = worker_runtime()
    deliver(runtime.sessions, runtime.settings, delivery_id)


_sweepers: list[Sweeper] = []


@worker_ready.connect
def start_sweeper(**_kwargs: Any) -> None:
    """In the worker's main process, which runs no task: it has its own engine, shared with no pool process."""
    settings = get_settings()
    queue = CeleryQueue(app)
    sweeper = Sweeper(
        create_session_factory(create_db_engine(settings.database_url)),
        settings,
        submit_webhook=queue.submit_webhook,
        submit_job=queue.submit_job,
    )
    sweeper.start()
    _sweepers.append(sweeper)


@worker_shutdown.connect
def stop_sweeper(**_kwargs: Any) -> None:
    while _sweepers:
        _sweepers.pop().stop()
