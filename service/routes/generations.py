"""Generation: draw images with a job's concepts, then read the result."""

import re
import secrets
from typing import Annotated

import anyio
from fastapi import APIRouter, Header, Request, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from attencraft_contract.limits import MAX_SEED
from attencraft_contract.models import GenerateRequest, GenerationList, GenerationOut
from attencraft_contract.rules import check_placeholders
from service.deps import (
    CurrentTenant,
    PromptLengthsDep,
    QueueDep,
    SessionDep,
    SessionReleasingRoute,
    SettingsDep,
    UrlSignerDep,
)
from service.errors import QUEUE_UNAVAILABLE, QUEUE_UNAVAILABLE_MESSAGE, ServiceUnavailable
from service.event_stream import EVENT_STREAM_RESPONSES, EventStreamResponse, LastEventId, event_stream
from service.generation_repository import (
    add_generation,
    concept_set_of,
    fail_generation,
    get_generation,
    list_job_generations,
)
from service.idempotency import REPLAYED_HEADER, IdempotencyKeyHeader, IdempotentRequest, commit_once
from service.models import Generation
from service.presenters import generation_out
from service.prompts import PromptLengthChecker
from service.queue import JobQueue, QueueUnavailable
from service.repository import get_job
from service.routes.problems import problem_responses

PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d{1,6})\b", re.IGNORECASE)
POLL_INTERVAL_S = 0.2
JOB_GALLERY_SIZE = 100

router = APIRouter(tags=["generations"], route_class=SessionReleasingRoute)


def _submit(
    body: GenerateRequest,
    tenant_id: str,
    idempotency_key: str | None,
    session: Session,
    queue: JobQueue,
    prompt_lengths: PromptLengthChecker,
) -> tuple[Generation, bool]:
    """The new generation, or the one an earlier request with the same Idempotency-Key created (True)."""
    job, concepts = concept_set_of(session, tenant_id, body.concept_ids)
    prompts = {"prompt": body.prompt, "negative_prompt": body.negative_prompt}
    check_placeholders(prompts, [concept.placeholder for concept in concepts])
    prompt_lengths.check(job, prompts)
    idempotent = IdempotentRequest.of(tenant_id, idempotency_key, "POST /generate", body.model_dump(mode="json"))
    if (earlier_id := idempotent.earlier_resource(session)) is not None:
        return get_generation(session, tenant_id, earlier_id), True
    generation = add_generation(
        session,
        tenant_id=tenant_id,
        job_id=job.id,
        concept_ids=[concept.id for concept in concepts],
        prompt=body.prompt,
        negative_prompt=body.negative_prompt,
        options=body.options().model_dump(mode="json"),
        seed=secrets.randbelow(MAX_SEED + 1) if body.seed is None else body.seed,
    )
    idempotent.remember(session, generation.id)
    if (earlier_id := commit_once(session, idempotent, discard=lambda: None)) is not None:
        return get_generation(session, tenant_id, earlier_id), True  # a concurrent retry's generation
    try:
        queue.submit_generation(generation.id)
    except QueueUnavailable as error:
        fail_generation(session, generation.id, QUEUE_UNAVAILABLE, QUEUE_UNAVAILABLE_MESSAGE)
        idempotent.forget(session)  # nothing was started: a retry with the same key starts the generation
        session.commit()
        raise ServiceUnavailable(QUEUE_UNAVAILABLE_MESSAGE, code=QUEUE_UNAVAILABLE) from error
    return generation, False


def _reload(session: Session, generation: Generation) -> None:
    session.refresh(generation)
    session.commit()  # end the read transaction: the next poll must see the worker's later commits (SQLite)


def preferred_wait_seconds(prefer: str | None, limit: int) -> int:
    """``Prefer: wait=N`` (RFC 7240), capped at ``limit``; 0 when absent."""
    match = PREFER_WAIT.search(prefer or "")
    return min(int(match.group(1)), limit) if match else 0


@router.post(
    "/generate",
    status_code=202,
    summary="Draw images with a job's concepts (202; 200 when `Prefer: wait=N` saw it finish)",
    responses={200: {"model": GenerationOut, "description": "Finished within the wait."}}
    | problem_responses(400, 401, 404, 409, 422, 503),
)
async def create_generation(
    body: GenerateRequest,
    response: Response,
    tenant: CurrentTenant,
    session: SessionDep,
    queue: QueueDep,
    settings: SettingsDep,
    signer: UrlSignerDep,
    prompt_lengths: PromptLengthsDep,
    prefer: Annotated[
        str | None, Header(description="`wait=N`: hold the response up to N seconds until the images are ready.")
    ] = None,
    idempotency_key: IdempotencyKeyHeader = None,
) -> GenerationOut:
    generation, replayed = await run_in_threadpool(
        _submit, body, tenant.id, idempotency_key, session, queue, prompt_lengths
    )
    if replayed:
        response.headers[REPLAYED_HEADER] = "true"
    wait_s = preferred_wait_seconds(prefer, settings.max_generation_wait_seconds)
    if wait_s:
        response.headers["Preference-Applied"] = f"wait={wait_s}"
        with anyio.move_on_after(wait_s):
            while not generation.status.is_terminal:
                await anyio.sleep(POLL_INTERVAL_S)
                await run_in_threadpool(_reload, session, generation)
        if generation.status.is_terminal:
            response.status_code = 200
    return generation_out(generation, signer)


@router.get(
    "/generations/{generation_id}",
    summary="A generation's state, image URLs, seed and timings",
    responses=problem_responses(401, 404),
)
def read_generation(
    generation_id: str, tenant: CurrentTenant, session: SessionDep, signer: UrlSignerDep
) -> GenerationOut:
    return generation_out(get_generation(session, tenant.id, generation_id), signer)


@router.get(
    "/generations/{generation_id}/events",
    summary="Follow a generation as server-sent events: started, then the end",
    description="As GET /jobs/{job_id}/events: `status` when a worker starts drawing, `end` when the images are "
    "stored (or the generation failed); then read GET /generations/{generation_id} for the image URLs.",
    response_class=EventStreamResponse,
    responses=EVENT_STREAM_RESPONSES | problem_responses(401, 404, 422),
)
def stream_generation_events(
    generation_id: str,
    request: Request,
    tenant: CurrentTenant,
    session: SessionDep,
    settings: SettingsDep,
    last_event_id: LastEventId = "",
) -> EventStreamResponse:
    get_generation(session, tenant.id, generation_id)
    session.close()  # the stream reads with short sessions of its own and the process's event hub
    hub = request.app.state.event_hub
    return event_stream(hub, generation_id, tenant.key_id, last_event_id, settings.event_keepalive_seconds)


@router.get(
    "/jobs/{job_id}/generations",
    summary=f"A job's gallery: its latest {JOB_GALLERY_SIZE} generations, newest first",
    responses=problem_responses(401, 404),
)
def list_generations_of_job(
    job_id: str, tenant: CurrentTenant, session: SessionDep, signer: UrlSignerDep
) -> GenerationList:
    job = get_job(session, tenant.id, job_id)
    generations = list_job_generations(session, tenant.id, job.id, JOB_GALLERY_SIZE)
    return GenerationList(job_id=job.id, items=[generation_out(generation, signer) for generation in generations])
