"""A broker that cannot take the message: a 503 problem, and the stored job ends failed instead of hanging queued."""

import pytest
from celery import Celery

from service.queue import QueueUnavailable, RecordingJobQueue
from tests.service.job_requests import assert_problem, post_job
from worker.celery_queue import CeleryQueue


class UnreachableQueue(RecordingJobQueue):
    def submit_job(self, job_id: str) -> None:
        raise QueueUnavailable(job_id)


@pytest.fixture
def queue() -> RecordingJobQueue:
    return UnreachableQueue()


def test_a_job_the_queue_cannot_take_is_a_503_and_ends_failed(client):
    problem = assert_problem(post_job(client), 503, "not reachable")
    assert problem["code"] == "queue_unavailable"
    jobs = client.get("/jobs").json()["items"]
    assert [(job["status"], job["error"]["code"]) for job in jobs] == [("failed", "queue_unavailable")]


def test_the_celery_queue_reports_a_dead_broker_as_queue_unavailable():
    app = Celery("unreachable", broker="redis://127.0.0.1:1/0")
    app.conf.broker_connection_retry = False
    app.conf.broker_connection_timeout = 1
    app.conf.task_publish_retry = False
    with pytest.raises(QueueUnavailable):
        CeleryQueue(app).submit_job("job-1")
