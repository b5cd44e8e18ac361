"""State changes are conditional updates: when two sessions race, exactly one wins."""

import secrets
import threading
from collections.abc import Callable

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.auth import get_or_create_tenant
from service.db import create_session_factory
from service.errors import Conflict
from service.models import JobStatus, new_id
from service.repository import NewConcept, add_job, claim_job, enter_stage, finish_job, get_job, request_cancel
from service.storage import StoredObject

ROUNDS = 15
WEIGHTS = StoredObject(key="weights.safetensors", size=3, sha256="0" * 64, content_type="application/octet-stream")


def _new_job(sessions: sessionmaker[Session], *, stage: JobStatus | None) -> tuple[str, str]:
    with sessions() as session:
        tenant = get_or_create_tenant(session, f"race-{secrets.token_hex(6)}")
        job = add_job(
            session,
            job_id=new_id(),
            tenant_id=tenant.id,
            concepts=[NewConcept("cat", None, None), NewConcept("dog", None, None)],
            options={"steps": 10, "seed": 0},
            image=StoredObject(key="image.png", size=1, sha256="0" * 64, content_type="image/png"),
            webhook_url=None,
        )
        if stage is not None:
            assert claim_job(session, job.id)
            assert enter_stage(session, job.id, stage, {})
        session.commit()
        return tenant.id, job.id


def _race(first: Callable[[], bool], second: Callable[[], bool]) -> tuple[bool, bool]:
    barrier = threading.Barrier(2)
    results: dict[int, bool] = {}

    def run(index: int, action: Callable[[], bool]) -> None:
        barrier.wait()
        results[index] = action()

    threads = [threading.Thread(target=run, args=(i, action)) for i, action in enumerate((first, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results[0], results[1]


def _cancel(sessions: sessionmaker[Session], tenant_id: str, job_id: str) -> bool:
    with sessions() as session:
        try:
            request_cancel(session, get_job(session, tenant_id, job_id))
        except Conflict:
            return False
        session.commit()
        return True


def _finish(sessions: sessionmaker[Session], tenant_id: str, job_id: str) -> bool:
    with sessions() as session:
        won = finish_job(session, job_id, tenant_id, [("weights", WEIGHTS)], {})
        session.commit()
        return won


def _claim(sessions: sessionmaker[Session], job_id: str) -> bool:
    with sessions() as session:
        won = claim_job(session, job_id)
        session.commit()
        return won


@pytest.mark.parametrize("round_index", range(ROUNDS))
def test_cancel_versus_finish(engine: Engine, round_index: int) -> None:
    sessions = create_session_factory(engine)
    tenant_id, job_id = _new_job(sessions, stage=JobStatus.SAVING)

    canceled, finished = _race(
        lambda: _cancel(sessions, tenant_id, job_id), lambda: _finish(sessions, tenant_id, job_id)
    )

    assert canceled != finished
    with sessions() as session:
        job = get_job(session, tenant_id, job_id)
        if finished:
            assert (job.status, job.cancel_requested, len(job.artifacts)) == (JobStatus.SUCCEEDED, False, 1)
        else:
            assert (job.status, job.cancel_requested, len(job.artifacts)) == (JobStatus.SAVING, True, 0)


@pytest.mark.parametrize("round_index", range(ROUNDS))
def test_cancel_versus_worker_claim(engine: Engine, round_index: int) -> None:
    sessions = create_session_factory(engine)
    tenant_id, job_id = _new_job(sessions, stage=None)

    canceled, claimed = _race(lambda: _cancel(sessions, tenant_id, job_id), lambda: _claim(sessions, job_id))

    with sessions() as session:
        job = get_job(session, tenant_id, job_id)
        if claimed:
            # The worker started first; the cancel became a stop request it will honour.
            assert canceled and (job.status, job.cancel_requested) == (JobStatus.MASKING, True)
        else:
            assert canceled and job.status == JobStatus.CANCELED
