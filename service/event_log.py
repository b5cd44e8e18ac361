"""The event log of jobs and generations: appended in the transaction of each state change, read by the streams.

Any process appends (the API, an in-process or a Celery worker) and any API process streams, so the log lives in
the database. Appending first locks the subject's row: one subject's events then get their ids in commit order,
and a reader that saw id n has seen every earlier event of that subject.
"""

from collections.abc import Collection
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from attencraft_contract.models import EventType, LossRecord
from service.models import Event, Generation, Job

EVENTS_PER_READ = 500


def _append(
    session: Session, subject: type[Job] | type[Generation], subject_id: str, kind: EventType, data: dict[str, Any]
) -> None:
    tenant_id = session.scalars(select(subject.tenant_id).where(subject.id == subject_id).with_for_update()).one()
    session.add(Event(tenant_id=tenant_id, subject_id=subject_id, type=kind.value, data=data))
    session.flush()


def append_job_event(session: Session, job_id: str, kind: EventType, data: dict[str, Any]) -> None:
    _append(session, Job, job_id, kind, data)


def append_generation_event(session: Session, generation_id: str, kind: EventType, data: dict[str, Any]) -> None:
    _append(session, Generation, generation_id, kind, data)


def events_after(session: Session, subject_id: str, after: int, limit: int = EVENTS_PER_READ) -> list[Event]:
    """The subject's events with ids above ``after``, oldest first."""
    query = select(Event).where(Event.subject_id == subject_id, Event.id > after).order_by(Event.id).limit(limit)
    return list(session.scalars(query))


def events_of_subjects_after(
    session: Session, subject_ids: Collection[str], after: int, limit: int = EVENTS_PER_READ
) -> list[Event]:
    """The events of these subjects with ids above ``after``, oldest first: one read for many streams."""
    query = select(Event).where(Event.subject_id.in_(subject_ids), Event.id > after).order_by(Event.id).limit(limit)
    return list(session.scalars(query))


def end_event_id(session: Session, subject_id: str) -> int | None:
    query = select(Event.id).where(Event.subject_id == subject_id, Event.type == EventType.END.value)
    return session.scalars(query).first()


def loss_history(session: Session, job_id: str) -> list[LossRecord]:
    """Every step's losses from the job's progress events; a step retrained after a resume keeps its last record."""
    query = select(Event.data).where(Event.subject_id == job_id, Event.type == EventType.PROGRESS.value)
    progress = session.scalars(query.order_by(Event.id))
    by_step = {record["step"]: record for data in progress for record in data["losses"]}
    return [LossRecord.model_validate(by_step[step]) for step in sorted(by_step)]
