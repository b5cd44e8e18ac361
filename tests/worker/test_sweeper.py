"""The periodic sweep: what it does besides stale running jobs and webhook retries (tested in test_deliveries)."""

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from service.auth import get_or_create_tenant
from service.models import IdempotencyKey, Job, JobStatus, utc_now
from service.settings import Settings
from worker.sweeper import Sweeper


def test_a_sweep_deletes_idempotency_keys_older_than_a_day(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    with sessions() as session:
        tenant = get_or_create_tenant(session, "sweeper-tests")
        for key, age in (("fresh", timedelta(hours=23)), ("stale", timedelta(hours=25))):
            session.add(
                IdempotencyKey(
                    tenant_id=tenant.id, key=key, request_sha256="0" * 64, resource_id=key, created_at=utc_now() - age
                )
            )
        session.commit()

    Sweeper(sessions, Settings(data_dir=tmp_path), submit_webhook=lambda _: None).sweep()

    with sessions() as session:
        assert list(session.scalars(select(IdempotencyKey.key))) == ["fresh"]


def test_a_job_left_queued_past_the_stale_limit_is_sent_again_once_per_limit(
    sessions: sessionmaker[Session], queued_job: Callable[..., str], tmp_path: Path
) -> None:
    lost, fresh = queued_job(), queued_job()
    with sessions() as session:  # the worker that held the lost job's message was killed before claiming it
        session.execute(update(Job).where(Job.id == lost).values(updated_at=utc_now() - timedelta(minutes=2)))
        session.commit()
    sent: list[str] = []
    sweeper = Sweeper(
        sessions,
        Settings(data_dir=tmp_path, stale_after_seconds=60),
        submit_webhook=lambda _: None,
        submit_job=sent.append,
    )

    sweeper.sweep()
    sweeper.sweep()

    assert sent == [lost]
    with sessions() as session:
        assert session.get_one(Job, lost).status == session.get_one(Job, fresh).status == JobStatus.QUEUED
