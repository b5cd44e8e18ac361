"""Reads and conditional writes of jobs: every state change says which states it may leave."""

import base64
import binascii
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, joinedload

from service.errors import Conflict, NotFound, ValidationProblem
from service.models import RUNNING_STATUSES, Artifact, Concept, Job, JobStatus, utc_now
from service.storage import StoredObject

ACTIVE_STATUSES = frozenset({JobStatus.QUEUED, *RUNNING_STATUSES})


@dataclass(frozen=True)
class NewConcept:
    name: str
    initializer: str | None
    user_mask_key: str | None


def placeholder_for(name: str) -> str:
    return f"<{name}>"


def add_job(
    session: Session,
    *,
    job_id: str,
    tenant_id: str,
    concepts: Sequence[NewConcept],
    options: dict[str, Any],
    image: StoredObject,
    webhook_url: str | None,
) -> Job:
    job = Job(
        id=job_id,
        tenant_id=tenant_id,
        status=JobStatus.QUEUED,
        options=options,
        image_key=image.key,
        image_sha256=image.sha256,
        webhook_url=webhook_url,
        progress_total=options["steps"],
        concepts=[
            Concept(
                tenant_id=tenant_id,
                position=position,
                name=concept.name,
                placeholder=placeholder_for(concept.name),
                initializer=concept.initializer,
                user_mask_key=concept.user_mask_key,
            )
            for position, concept in enumerate(concepts)
        ],
    )
    session.add(job)
    session.flush()
    return job


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def get_job(session: Session, tenant_id: str, job_id: str) -> Job:
    query = select(Job).options(joinedload(Job.concepts)).where(Job.id == job_id, Job.tenant_id == tenant_id)
    job = _is_uuid(job_id) and session.scalars(query).unique().one_or_none()
    if not job:
        raise NotFound(f"There is no job {job_id!r}.", code="job_not_found")
    return job


def get_concept(session: Session, tenant_id: str, concept_id: str) -> Concept:
    concept = _is_uuid(concept_id) and session.scalar(
        select(Concept).where(Concept.id == concept_id, Concept.tenant_id == tenant_id)
    )
    if not concept:
        raise NotFound(f"There is no concept {concept_id!r}.", code="concept_not_found")
    return concept


def encode_cursor(job: Job) -> str:
    payload = json.dumps([job.created_at.isoformat(), job.id]).encode()
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created_at, job_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(created_at), str(uuid.UUID(job_id))
    except (ValueError, TypeError, AttributeError, binascii.Error) as exc:
        raise ValidationProblem(
            "The cursor is not one this API handed out; pass next_cursor from the previous page unchanged.",
            code="invalid_cursor",
            errors=[{"field": "cursor", "message": "not a valid cursor"}],
        ) from exc


def list_jobs(
    session: Session, tenant_id: str, *, status: JobStatus | None, cursor: str | None, limit: int
) -> tuple[list[Job], str | None]:
    """A page of the tenant's jobs, newest first, and the cursor of the next page."""
    query = select(Job).where(Job.tenant_id == tenant_id)
    if status is not None:
        query = query.where(Job.status == status)
    if cursor is not None:
        created_at, job_id = _decode_cursor(cursor)
        query = query.where(
            or_(Job.created_at < created_at, and_(Job.created_at == created_at, Job.id < job_id)),
        )
    jobs = list(session.scalars(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)))
    next_cursor = encode_cursor(jobs[limit - 1]) if len(jobs) > limit else None
    return jobs[:limit], next_cursor


def _transition(session: Session, job_id: str, allowed: Iterable[JobStatus], **values: Any) -> bool:
    """UPDATE ... WHERE status IN allowed; True when this caller's update won."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(list(allowed)))
        .values(updated_at=utc_now(), **values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def request_cancel(session: Session, job: Job) -> None:
    """A queued job is canceled at once; a running one is asked to stop (its worker ends it canceled)."""
    if _transition(session, job.id, [JobStatus.QUEUED], status=JobStatus.CANCELED, finished_at=utc_now()):
        return
    if _transition(session, job.id, RUNNING_STATUSES, cancel_requested=True):
        return
    session.refresh(job)
    raise Conflict(f"Job {job.id} has already finished ({job.status.value}); it cannot be canceled.")


def claim_job(session: Session, job_id: str) -> bool:
    """Move a queued job to its first stage; False when it was canceled (or claimed) meanwhile."""
    return _transition(session, job_id, [JobStatus.QUEUED], status=JobStatus.MASKING, started_at=utc_now())


def enter_stage(session: Session, job_id: str, stage: JobStatus, stage_timings: dict[str, Any]) -> bool:
    return _transition(session, job_id, RUNNING_STATUSES, status=stage, stage_timings=stage_timings)


def record_progress(session: Session, job_id: str, step: int, total: int) -> bool:
    return _transition(session, job_id, RUNNING_STATUSES, progress_step=step, progress_total=total)


def _set_per_concept(session: Session, job_id: str, column: str, values: Sequence[Any]) -> None:
    """Write values[i] into ``column`` of the job's i-th concept."""
    for position, value in enumerate(values):
        session.execute(
            update(Concept)
            .where(Concept.job_id == job_id, Concept.position == position)
            .values({column: value})
            .execution_options(synchronize_session=False)
        )


def record_masks(session: Session, job_id: str, mask_keys: Sequence[str]) -> None:
    _set_per_concept(session, job_id, "mask_key", mask_keys)


def record_ratios(session: Session, job_id: str, ratios: Sequence[float]) -> None:
    _set_per_concept(session, job_id, "ratio", ratios)


def finish_job(
    session: Session,
    job_id: str,
    tenant_id: str,
    artifacts: Sequence[tuple[str, StoredObject]],
    timings: dict[str, Any],
) -> bool:
    """Succeed unless a cancel request got in first; the artifacts are recorded only when this wins."""
    won = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(list(RUNNING_STATUSES)), Job.cancel_requested.is_(False))
        .values(status=JobStatus.SUCCEEDED, stage_timings=timings, finished_at=utc_now(), updated_at=utc_now())
        .execution_options(synchronize_session=False)
    )
    if won.rowcount != 1:
        return False
    session.add_all(
        Artifact(
            tenant_id=tenant_id,
            job_id=job_id,
            name=name,
            key=stored.key,
            size=stored.size,
            sha256=stored.sha256,
            content_type=stored.content_type,
        )
        for name, stored in artifacts
    )
    return True


def fail_job(session: Session, job_id: str, code: str, message: str, timings: dict[str, Any] | None = None) -> bool:
    values: dict[str, Any] = {"stage_timings": timings} if timings is not None else {}
    return _transition(
        session,
        job_id,
        ACTIVE_STATUSES,
        status=JobStatus.FAILED,
        error_code=code,
        error_message=message,
        finished_at=utc_now(),
        **values,
    )


def mark_canceled(session: Session, job_id: str, timings: dict[str, Any]) -> bool:
    """The worker confirms a cancel request once it stopped and removed the job's outputs."""
    return _transition(
        session, job_id, RUNNING_STATUSES, status=JobStatus.CANCELED, stage_timings=timings, finished_at=utc_now()
    )


def fail_interrupted_jobs(session: Session) -> list[str]:
    """Jobs left running by a process that died: fail them so clients are not left waiting forever."""
    job_ids = list(session.scalars(select(Job.id).where(Job.status.in_(list(RUNNING_STATUSES)))))
    for job_id in job_ids:
        fail_job(session, job_id, "interrupted", "The server stopped while this job was running; submit it again.")
    return job_ids


def queued_job_ids(session: Session) -> list[str]:
    return list(session.scalars(select(Job.id).where(Job.status == JobStatus.QUEUED).order_by(Job.created_at)))


def should_stop(session: Session, job_id: str) -> bool:
    """A worker stops when a cancel was requested or the job left the running states under it."""
    row = session.execute(select(Job.cancel_requested, Job.status).where(Job.id == job_id)).one_or_none()
    return row is None or row.cancel_requested or row.status not in RUNNING_STATUSES


def forget_masks(session: Session, job_id: str) -> None:
    session.execute(
        update(Concept)
        .where(Concept.job_id == job_id)
        .values(mask_key=None)
        .execution_options(synchronize_session=False)
    )
