"""Reads and conditional writes of jobs: every state change says which states it may leave."""

import base64
import binascii
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, true, update
from sqlalchemy.orm import Session, joinedload

from attencraft_contract.models import RUNNING_STATUSES, EventType
from attencraft_contract.rules import placeholder_for
from service.errors import QUEUE_UNAVAILABLE, QUEUE_UNAVAILABLE_MESSAGE, Conflict, NotFound, ValidationProblem
from service.event_log import append_job_event
from service.models import (
    Artifact,
    Concept,
    DeliveryStatus,
    Job,
    JobStatus,
    Tenant,
    WebhookDelivery,
    utc_now,
)
from service.presenters import job_out
from service.storage import StoredObject
from service.webhooks import new_secret

ACTIVE_STATUSES = frozenset({JobStatus.QUEUED, *RUNNING_STATUSES})
HEATMAP_ARTIFACT_PREFIX = "heatmap_"


def heatmap_artifact_name(position: int, moment: str) -> str:
    """``heatmap_0_before``: the concept at ``position``, before (or after) the random walk."""
    return f"{HEATMAP_ARTIFACT_PREFIX}{position}_{moment}"


@dataclass(frozen=True)
class NewConcept:
    name: str
    initializer: str | None
    user_mask_key: str | None


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
    append_job_event(session, job.id, EventType.STATUS, {"status": JobStatus.QUEUED.value})
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


def _transition(
    session: Session, job_id: str, allowed: Iterable[JobStatus], *, attempt: int | None = None, **values: Any
) -> bool:
    """UPDATE ... WHERE status IN allowed (and, given an attempt, only while it is the job's current one)."""
    query = update(Job).where(Job.id == job_id, Job.status.in_(list(allowed)))
    if attempt is not None:
        query = query.where(Job.attempts == attempt)
    result = session.execute(query.values(updated_at=utc_now(), **values).execution_options(synchronize_session=False))
    return result.rowcount == 1


def _record_job_end(session: Session, job_id: str) -> None:
    """After a terminal transition: the end event and, when the job has a webhook URL, one delivery due at once."""
    job = session.scalars(select(Job).where(Job.id == job_id).execution_options(populate_existing=True)).one()
    error = {"code": job.error_code, "message": job.error_message} if job.error_code else None
    append_job_event(session, job_id, EventType.END, {"status": job.status.value, "error": error})
    if job.webhook_url is None:
        return
    event_type = f"job.{job.status.value}"
    data = job_out(job, None).model_dump(mode="json")
    session.add(
        WebhookDelivery(
            tenant_id=job.tenant_id,
            job_id=job.id,
            event_type=event_type,
            url=job.webhook_url,
            payload={"type": event_type, "timestamp": utc_now().isoformat(), "data": data},
            status=DeliveryStatus.PENDING,
            attempt_log=[],
            next_attempt_at=utc_now(),
        )
    )


def _end_job(
    session: Session, job_id: str, allowed: Iterable[JobStatus], *, attempt: int | None, **values: Any
) -> bool:
    """A terminal transition; when it wins, the job's webhook event is queued in the same transaction."""
    ended = _transition(session, job_id, allowed, attempt=attempt, checkpoint_key=None, finished_at=utc_now(), **values)
    if ended:
        _record_job_end(session, job_id)
    return ended


def request_cancel(session: Session, job: Job) -> bool:
    """A queued job is canceled at once (True); a running one is asked to stop (its worker ends it canceled)."""
    if _end_job(session, job.id, [JobStatus.QUEUED], attempt=None, status=JobStatus.CANCELED):
        return True
    if _transition(session, job.id, RUNNING_STATUSES, cancel_requested=True):
        return False
    session.refresh(job)
    raise Conflict(f"Job {job.id} has already finished ({job.status.value}); it cannot be canceled.")


def claim_job(session: Session, job_id: str) -> int | None:
    """Start a new attempt of a queued job; its number, or None when it was canceled (or claimed) meanwhile.

    A job requeued after its worker died keeps its checkpoint: the new attempt resumes from checkpoint_step.
    """
    now = utc_now()
    claimed = _transition(
        session,
        job_id,
        [JobStatus.QUEUED],
        status=JobStatus.MASKING,
        attempts=Job.attempts + 1,
        heartbeat_at=now,
        started_at=func.coalesce(Job.started_at, now),
    )
    if not claimed:
        return None
    job = session.scalars(select(Job).where(Job.id == job_id).execution_options(populate_existing=True)).one()
    job.runs = [*job.runs, {"attempt": job.attempts, "from_step": job.checkpoint_step, "to_step": job.checkpoint_step}]
    append_job_event(session, job_id, EventType.STATUS, {"status": JobStatus.MASKING.value, "attempt": job.attempts})
    return job.attempts


def enter_stage(
    session: Session, job_id: str, stage: JobStatus, stage_timings: dict[str, Any], *, attempt: int | None = None
) -> bool:
    """A new stage (and the timings so far); its status event only when the stage changes (claiming the job
    entered masking already)."""
    previous = session.scalar(select(Job.status).where(Job.id == job_id).with_for_update())
    entered = _transition(session, job_id, RUNNING_STATUSES, attempt=attempt, status=stage, stage_timings=stage_timings)
    if entered and previous != stage:
        append_job_event(session, job_id, EventType.STATUS, {"status": stage.value})
    return entered


def record_progress(
    session: Session,
    job_id: str,
    attempt: int,
    runs: list[dict[str, Any]],
    *,
    step: int,
    total: int,
    eta_seconds: float | None,
    losses: list[dict[str, Any]],
    training_stage: dict[str, Any],
) -> bool:
    """The step reached, its training stage (Recipe.stage_progress), and the losses of the steps since the last
    report, as one progress event."""
    recorded = _transition(
        session,
        job_id,
        RUNNING_STATUSES,
        attempt=attempt,
        progress_step=step,
        progress_total=total,
        runs=runs,
        heartbeat_at=utc_now(),
    )
    if recorded:
        progress = {
            "step": step,
            "total": total,
            "training_stage": training_stage,
            "eta_seconds": eta_seconds,
            "losses": losses,
        }
        append_job_event(session, job_id, EventType.PROGRESS, {"status": JobStatus.TRAINING.value} | progress)
    return recorded


def beat(session: Session, job_id: str, attempt: int) -> bool:
    """The running attempt is alive; False once the job ended or another attempt took it over."""
    return _transition(session, job_id, RUNNING_STATUSES, attempt=attempt, heartbeat_at=utc_now())


def record_checkpoint(
    session: Session, job_id: str, attempt: int, key: str, step: int, runs: list[dict[str, Any]]
) -> str | None:
    """Point the job at a new checkpoint; returns the key it replaced (to delete), or key itself when superseded."""
    previous = session.scalar(select(Job.checkpoint_key).where(Job.id == job_id))
    recorded = _transition(
        session, job_id, RUNNING_STATUSES, attempt=attempt, checkpoint_key=key, checkpoint_step=step, runs=runs
    )
    return previous if recorded else key


def requeue_stale_jobs(session: Session, cutoff: datetime, *, max_attempts: int) -> list[str]:
    """Running jobs whose heartbeat is older than cutoff (their worker died): back to queued, checkpoint kept; a job
    whose worker died ``max_attempts`` times fails ``too_many_attempts`` instead (it may be what kills them)."""
    is_stale = func.coalesce(Job.heartbeat_at, Job.updated_at) < cutoff
    return _requeue_or_give_up(session, is_stale, max_attempts)


def requeue_interrupted_jobs(session: Session, *, max_attempts: int) -> list[str]:
    """Every running job, at the start of the only process that runs them (embedded mode): its previous run
    stopped with the process. As requeue_stale_jobs: each resumes from its last checkpoint."""
    return _requeue_or_give_up(session, true(), max_attempts)


def touch_long_queued_jobs(session: Session, cutoff: datetime) -> list[str]:
    """Jobs queued (or last sent) before cutoff and still unclaimed, marked sent again now: their message may be
    lost (a worker killed while holding it, or an API process that died between its commit and its send), so the
    caller sends it again. A duplicate message is harmless: only one claim of a queued job wins."""
    is_waiting = and_(Job.status == JobStatus.QUEUED, Job.updated_at < cutoff)
    return [
        job_id
        for job_id in session.scalars(select(Job.id).where(is_waiting).order_by(Job.created_at))
        if session.execute(
            update(Job)
            .where(Job.id == job_id, is_waiting)
            .values(updated_at=utc_now())
            .execution_options(synchronize_session=False)
        ).rowcount
        == 1
    ]


def _requeue_or_give_up(session: Session, condition: ColumnElement[bool], max_attempts: int) -> list[str]:
    is_orphaned = and_(Job.status.in_(list(RUNNING_STATUSES)), condition)
    requeued = []
    for job_id, attempts in session.execute(select(Job.id, Job.attempts).where(is_orphaned)).all():
        if attempts >= max_attempts:
            message = f"The job's worker stopped {attempts} times while running it; it is not tried again."
            _end_job(
                session,
                job_id,
                RUNNING_STATUSES,
                attempt=attempts,
                status=JobStatus.FAILED,
                error_code="too_many_attempts",
                error_message=message,
            )
        elif (
            session.execute(
                update(Job)
                .where(Job.id == job_id, is_orphaned)
                .values(status=JobStatus.QUEUED, updated_at=utc_now())
                .execution_options(synchronize_session=False)
            ).rowcount
            == 1
        ):
            requeued.append(job_id)
    for job_id in requeued:
        append_job_event(session, job_id, EventType.STATUS, {"status": JobStatus.QUEUED.value, "requeued": True})
    return requeued


def _set_per_concept(session: Session, job_id: str, attempt: int, column: str, values: Sequence[Any]) -> bool:
    """Write values[i] into ``column`` of the job's i-th concept, only while ``attempt`` is the job's running one
    (a stalled worker's late write must not overwrite the live attempt's). The job row's update is the fence."""
    if not _transition(session, job_id, RUNNING_STATUSES, attempt=attempt):
        return False
    for position, value in enumerate(values):
        session.execute(
            update(Concept)
            .where(Concept.job_id == job_id, Concept.position == position)
            .values({column: value})
            .execution_options(synchronize_session=False)
        )
    return True


def record_masks(session: Session, job_id: str, attempt: int, mask_keys: Sequence[str]) -> bool:
    if not _set_per_concept(session, job_id, attempt, "mask_key", mask_keys):
        return False
    append_job_event(session, job_id, EventType.MASKS, {"count": len(mask_keys)})
    return True


def _add_artifacts(
    session: Session, tenant_id: str, job_id: str, artifacts: Sequence[tuple[str, StoredObject]]
) -> None:
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


def _forget_heatmaps(session: Session, job_id: str) -> None:
    session.execute(
        delete(Artifact).where(Artifact.job_id == job_id, Artifact.name.startswith(HEATMAP_ARTIFACT_PREFIX))
    )


def record_heatmaps(
    session: Session, job_id: str, tenant_id: str, attempt: int, heatmaps: Sequence[tuple[str, StoredObject]]
) -> bool:
    """The attention heatmaps, listed among the job's files from masking time on (a new attempt replaces them);
    fenced like the masks."""
    if not _transition(session, job_id, RUNNING_STATUSES, attempt=attempt):
        return False
    _forget_heatmaps(session, job_id)
    _add_artifacts(session, tenant_id, job_id, heatmaps)
    append_job_event(session, job_id, EventType.HEATMAPS, {"count": len(heatmaps) // 2})
    return True


def record_ratios(session: Session, job_id: str, attempt: int, ratios: Sequence[float]) -> bool:
    if not _set_per_concept(session, job_id, attempt, "ratio", ratios):
        return False
    append_job_event(session, job_id, EventType.RATIOS, {"ratios": list(ratios)})
    return True


def finish_job(
    session: Session,
    job_id: str,
    tenant_id: str,
    artifacts: Sequence[tuple[str, StoredObject]],
    timings: dict[str, Any],
    *,
    attempt: int | None = None,
) -> bool:
    """Succeed unless a cancel request got in first; the artifacts are recorded only when this wins."""
    query = update(Job).where(Job.id == job_id, Job.status.in_(list(RUNNING_STATUSES)), Job.cancel_requested.is_(False))
    if attempt is not None:
        query = query.where(Job.attempts == attempt)
    won = session.execute(
        query.values(
            status=JobStatus.SUCCEEDED,
            stage_timings=timings,
            checkpoint_key=None,
            finished_at=utc_now(),
            updated_at=utc_now(),
        ).execution_options(synchronize_session=False)
    )
    if won.rowcount != 1:
        return False
    _add_artifacts(session, tenant_id, job_id, artifacts)
    _record_job_end(session, job_id)
    return True


def fail_job(
    session: Session,
    job_id: str,
    code: str,
    message: str,
    timings: dict[str, Any] | None = None,
    *,
    attempt: int | None = None,
) -> bool:
    values: dict[str, Any] = {"stage_timings": timings} if timings is not None else {}
    return _end_job(
        session,
        job_id,
        ACTIVE_STATUSES,
        attempt=attempt,
        status=JobStatus.FAILED,
        error_code=code,
        error_message=message,
        **values,
    )


def fail_unsubmitted_job(session: Session, job_id: str) -> bool:
    """A queued job whose message the broker refused: it ends failed instead of waiting forever."""
    return fail_job(session, job_id, QUEUE_UNAVAILABLE, QUEUE_UNAVAILABLE_MESSAGE)


def mark_canceled(session: Session, job_id: str, attempt: int, timings: dict[str, Any]) -> bool:
    """The worker confirms a cancel request; it removes the job's outputs once this wins."""
    return _end_job(
        session, job_id, RUNNING_STATUSES, attempt=attempt, status=JobStatus.CANCELED, stage_timings=timings
    )


def queued_job_ids(session: Session) -> list[str]:
    return list(session.scalars(select(Job.id).where(Job.status == JobStatus.QUEUED).order_by(Job.created_at)))


def should_stop(session: Session, job_id: str, attempt: int) -> bool:
    """A worker stops when a cancel was requested, the job left the running states or another attempt took over."""
    row = session.execute(select(Job.cancel_requested, Job.status, Job.attempts).where(Job.id == job_id)).one_or_none()
    return row is None or row.cancel_requested or row.status not in RUNNING_STATUSES or row.attempts != attempt


def forget_masks(session: Session, job_id: str) -> None:
    """A canceled job's masks and heatmaps are removed from the store: forget them here too."""
    _forget_heatmaps(session, job_id)
    session.execute(
        update(Concept)
        .where(Concept.job_id == job_id)
        .values(mask_key=None)
        .execution_options(synchronize_session=False)
    )


def webhook_secret(session: Session, tenant_id: str) -> str:
    """The tenant's signing secret, created on first use (concurrent creators agree on the first one stored)."""
    session.execute(
        update(Tenant)
        .where(Tenant.id == tenant_id, Tenant.webhook_secret.is_(None))
        .values(webhook_secret=new_secret())
        .execution_options(synchronize_session=False)
    )
    return session.scalars(select(Tenant.webhook_secret).where(Tenant.id == tenant_id)).one() or ""


def list_deliveries(session: Session, tenant_id: str, job_id: str) -> list[WebhookDelivery]:
    get_job(session, tenant_id, job_id)
    query = select(WebhookDelivery).where(WebhookDelivery.job_id == job_id, WebhookDelivery.tenant_id == tenant_id)
    return list(session.scalars(query.order_by(WebhookDelivery.created_at)))


def claim_due_deliveries(session: Session, lease: timedelta, limit: int = 100) -> list[str]:
    """Pending deliveries whose next attempt is due, each leased to this caller so no other sweep sends it too."""
    now = utc_now()
    is_due = and_(WebhookDelivery.status == DeliveryStatus.PENDING, WebhookDelivery.next_attempt_at <= now)
    candidates = list(
        session.scalars(select(WebhookDelivery.id).where(is_due).order_by(WebhookDelivery.next_attempt_at).limit(limit))
    )
    return [
        delivery_id
        for delivery_id in candidates
        if session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id, is_due)
            .values(next_attempt_at=now + lease, updated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        == 1
    ]


def record_delivery_attempt(
    session: Session,
    delivery: WebhookDelivery,
    entry: dict[str, Any],
    status: DeliveryStatus,
    next_attempt_at: datetime | None,
) -> bool:
    """Log one attempt; only the holder of the delivery's current attempt count may write it."""
    return (
        session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery.id,
                WebhookDelivery.status == DeliveryStatus.PENDING,
                func.json_array_length(WebhookDelivery.attempt_log) == len(delivery.attempt_log),
            )
            .values(
                attempt_log=[*delivery.attempt_log, entry],
                status=status,
                next_attempt_at=next_attempt_at,
                updated_at=utc_now(),
            )
            .execution_options(synchronize_session=False)
        ).rowcount
        == 1
    )
