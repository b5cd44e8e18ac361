"""The periodic sweep: what it does besides stale jobs and webhook retries (tested in test_deliveries)."""

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.auth import get_or_create_tenant
from service.models import IdempotencyKey, utc_now
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
