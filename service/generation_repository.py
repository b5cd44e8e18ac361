"""Reads and conditional writes of generations: the concept-set checks of POST /generate, then the worker's claims."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from attencraft_contract.models import EventType
from service.errors import Conflict, NotFound, ValidationProblem
from service.event_log import append_generation_event
from service.models import Concept, Generation, GenerationStatus, Job, JobStatus, utc_now
from service.repository import get_concept

WORKER_LOST_MESSAGE = "The worker drawing these images stopped before they were stored; submit the generation again."


def concept_set_of(session: Session, tenant_id: str, concept_ids: Sequence[str]) -> tuple[Job, list[Concept]]:
    """The one succeeded job the concepts come from, and the concepts; 404, 422 or 409 otherwise."""
    concepts = [get_concept(session, tenant_id, concept_id) for concept_id in concept_ids]
    job_ids = sorted({concept.job_id for concept in concepts})
    if len(job_ids) > 1:
        raise ValidationProblem(
            f"The concepts come from different jobs ({', '.join(job_ids)}); one generation uses the concepts of one "
            "job. Composing concepts learned by different jobs is not supported yet.",
            code="concepts_from_different_jobs",
            errors=[{"field": "concept_ids", "message": "concepts from different jobs"}],
        )
    job = concepts[0].job
    if job.status != JobStatus.SUCCEEDED:
        raise Conflict(
            f"Job {job.id} has not succeeded ({job.status.value}); its concepts can be used once it has.",
            code="job_not_succeeded",
        )
    return job, concepts


def add_generation(
    session: Session,
    *,
    tenant_id: str,
    job_id: str,
    concept_ids: list[str],
    prompt: str,
    negative_prompt: str,
    options: dict[str, Any],
    seed: int,
) -> Generation:
    generation = Generation(
        tenant_id=tenant_id,
        job_id=job_id,
        concept_ids=concept_ids,
        prompt=prompt,
        negative_prompt=negative_prompt,
        options=options,
        seed=seed,
        status=GenerationStatus.QUEUED,
        image_keys=[],
    )
    session.add(generation)
    session.flush()
    append_generation_event(session, generation.id, EventType.STATUS, {"status": GenerationStatus.QUEUED.value})
    return generation


def get_generation(session: Session, tenant_id: str, generation_id: str) -> Generation:
    generation = session.scalar(
        select(Generation).where(Generation.id == generation_id, Generation.tenant_id == tenant_id)
    )
    if generation is None:
        raise NotFound(f"There is no generation {generation_id!r}.", code="generation_not_found")
    return generation


def list_job_generations(session: Session, tenant_id: str, job_id: str, limit: int) -> list[Generation]:
    query = select(Generation).where(Generation.job_id == job_id, Generation.tenant_id == tenant_id)
    return list(session.scalars(query.order_by(Generation.created_at.desc(), Generation.id.desc()).limit(limit)))


def _transition(session: Session, generation_id: str, allowed: GenerationStatus, **values: Any) -> bool:
    """UPDATE ... WHERE status = allowed; True when this caller's update won."""
    result = session.execute(
        update(Generation)
        .where(Generation.id == generation_id, Generation.status == allowed)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def _claim(session: Session, generation_id: str) -> bool:
    now = utc_now()
    claimed = _transition(
        session,
        generation_id,
        GenerationStatus.QUEUED,
        status=GenerationStatus.RUNNING,
        started_at=now,
        heartbeat_at=now,
    )
    if claimed:
        append_generation_event(session, generation_id, EventType.STATUS, {"status": GenerationStatus.RUNNING.value})
    return claimed


def _end(session: Session, generation_id: str, status: GenerationStatus, error: dict[str, str] | None) -> None:
    append_generation_event(session, generation_id, EventType.END, {"status": status.value, "error": error})


def claim_batch(session: Session, generation_id: str, max_images: int) -> list[Generation]:
    """Claim this queued generation and, while they fit in ``max_images``, older queued ones of the same job.

    Empty when this generation was claimed (or finished) meanwhile.
    """
    if not _claim(session, generation_id):
        return []
    first = session.get_one(Generation, generation_id, populate_existing=True)
    batch = [first]
    images = first.options["num_images"]
    waiting = session.scalars(
        select(Generation)
        .where(
            Generation.job_id == first.job_id,
            Generation.status == GenerationStatus.QUEUED,
            Generation.id != first.id,
        )
        .order_by(Generation.created_at)
    )
    for other in waiting:
        count = other.options["num_images"]
        if images + count <= max_images and _claim(session, other.id):
            batch.append(other)
            images += count
    return batch


def finish_generation(session: Session, generation_id: str, image_keys: list[str]) -> bool:
    finished = _transition(
        session,
        generation_id,
        GenerationStatus.RUNNING,
        status=GenerationStatus.SUCCEEDED,
        image_keys=image_keys,
        finished_at=utc_now(),
    )
    if finished:
        _end(session, generation_id, GenerationStatus.SUCCEEDED, None)
    return finished


def fail_generation(session: Session, generation_id: str, code: str, message: str) -> bool:
    values = {"status": GenerationStatus.FAILED, "error_code": code, "error_message": message, "finished_at": utc_now()}
    failed = _transition(session, generation_id, GenerationStatus.RUNNING, **values) or _transition(
        session, generation_id, GenerationStatus.QUEUED, **values
    )
    if failed:
        _end(session, generation_id, GenerationStatus.FAILED, {"code": code, "message": message})
    return failed


def beat(session: Session, generation_ids: Sequence[str]) -> None:
    """The worker drawing these generations is alive."""
    session.execute(
        update(Generation)
        .where(Generation.id.in_(generation_ids), Generation.status == GenerationStatus.RUNNING)
        .values(heartbeat_at=utc_now())
        .execution_options(synchronize_session=False)
    )


def fail_orphaned_generations(session: Session, cutoff: datetime | None) -> list[str]:
    """Running generations whose worker died (its last beat before ``cutoff``; with None, every running one: the
    process that ran them is gone) fail ``worker_lost``, each once, so clients are not left waiting."""
    query = select(Generation.id).where(Generation.status == GenerationStatus.RUNNING)
    if cutoff is not None:
        query = query.where(func.coalesce(Generation.heartbeat_at, Generation.started_at) < cutoff)
    return [
        generation_id
        for generation_id in session.scalars(query)
        if fail_generation(session, generation_id, "worker_lost", WORKER_LOST_MESSAGE)
    ]


def queued_generation_ids(session: Session) -> list[str]:
    query = select(Generation.id).where(Generation.status == GenerationStatus.QUEUED)
    return list(session.scalars(query.order_by(Generation.created_at)))
