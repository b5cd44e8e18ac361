"""The Celery app: a Redis broker, the training, inference and webhooks queues, one task at a time per process.

The database row is the source of truth, so there is no result backend; tasks carry ids only. Messages are
acknowledged after the task ran (``acks_late``) and requeued when its process dies (``reject_on_worker_lost``).
The API process imports this module only to send tasks by name: it never imports the task modules (torch).
"""

from celery import Celery
from kombu import Exchange, Queue

from service.settings import Settings, get_settings

TRAINING_QUEUE = "training"
INFERENCE_QUEUE = "inference"
WEBHOOKS_QUEUE = "webhooks"
QUEUES = (TRAINING_QUEUE, INFERENCE_QUEUE, WEBHOOKS_QUEUE)
TRAIN_TASK = "attencraft.train"
GENERATE_TASK = "attencraft.generate"
DELIVER_TASK = "attencraft.deliver_webhook"
# A message held longer than this by a worker that went away is delivered again (the claim makes it harmless).
VISIBILITY_MARGIN_S = 600


def create_celery_app(settings: Settings) -> Celery:
    app = Celery("attencraft", broker=settings.broker_url, include=["worker.tasks", "worker.generation_tasks"])
    app.conf.update(
        task_queues=[Queue(name, Exchange(name), routing_key=name) for name in QUEUES],
        task_default_queue=TRAINING_QUEUE,
        task_routes={
            TRAIN_TASK: {"queue": TRAINING_QUEUE},
            GENERATE_TASK: {"queue": INFERENCE_QUEUE},
            DELIVER_TASK: {"queue": WEBHOOKS_QUEUE},
        },
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_soft_time_limit=settings.task_soft_time_limit_seconds,
        task_time_limit=settings.task_hard_time_limit_seconds,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": settings.task_hard_time_limit_seconds + VISIBILITY_MARGIN_S},
    )
    return app


app = create_celery_app(get_settings())
