"""Training jobs: submit, inspect, list, cancel, and download their artifacts."""

import tempfile
import zipfile
from collections.abc import Iterator
from typing import IO, Annotated

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import StreamingResponse

from attencraft_contract import rules
from attencraft_contract.images import check_image, check_masks, mask_as_png
from attencraft_contract.limits import MAX_CONCEPTS, MAX_WEBHOOK_URL_CHARS, MIN_CONCEPTS
from attencraft_contract.methods import check_masks_allowed
from attencraft_contract.models import (
    ArtifactList,
    ExportFormat,
    JobListQuery,
    JobOut,
    JobPage,
    JobReport,
    LossHistory,
)
from service.deps import CurrentTenant, QueueDep, SessionDep, SessionReleasingRoute, SettingsDep, StoreDep, UrlSignerDep
from service.errors import QUEUE_UNAVAILABLE, QUEUE_UNAVAILABLE_MESSAGE, Conflict, ServiceUnavailable
from service.event_log import loss_history
from service.event_stream import EVENT_STREAM_RESPONSES, EventStreamResponse, LastEventId, event_stream
from service.idempotency import REPLAYED_HEADER, IdempotencyKeyHeader, IdempotentRequest, commit_once, stream_sha256
from service.job_report import job_report
from service.models import Job, JobStatus, new_id
from service.presenters import UrlSigner, artifact_list, job_out
from service.queue import QueueUnavailable
from service.repository import NewConcept, add_job, fail_unsubmitted_job, get_job, list_jobs, request_cancel
from service.routes.problems import problem_responses
from service.storage import ObjectStore
from service.storage.layout import checkpoints_prefix, job_prefix
from service.uploads import check_webhook_target

router = APIRouter(prefix="/jobs", tags=["jobs"], route_class=SessionReleasingRoute)
ARCHIVE_CHUNK_BYTES = 1024 * 1024
ARCHIVE_MEMORY_BYTES = 32 * 1024 * 1024  # larger archives spill to a temporary file

# What the contract's rules enforce, stated in the OpenAPI document (the rules, not FastAPI, check them, so the API
# and the CLI say the same sentence for the same mistake).
CONCEPTS_SCHEMA = {
    "minItems": MIN_CONCEPTS,
    "maxItems": MAX_CONCEPTS,
    "items": {"type": "string", "pattern": rules.PLAIN_WORD_PATTERN},
    "examples": [["cat", "dog"]],
}
INITIALIZERS_SCHEMA = {
    "maxItems": MAX_CONCEPTS,
    "items": {"type": "string", "pattern": rules.OPTIONAL_PLAIN_WORD_PATTERN},
}
OPTIONS_SCHEMA = {
    "contentMediaType": "application/json",
    "contentSchema": {"$ref": "#/components/schemas/JobOptions"},
    "examples": ['{"steps": 300, "seed": 0, "fit": "crop"}'],
}


@router.post(
    "",
    status_code=202,
    summary="Submit a training job",
    responses=problem_responses(400, 401, 413, 415, 422, 503, 507),
)
def create_job(
    response: Response,
    tenant: CurrentTenant,
    session: SessionDep,
    store: StoreDep,
    queue: QueueDep,
    settings: SettingsDep,
    signer: UrlSignerDep,
    image: Annotated[UploadFile, File(description="One photo (PNG, JPEG or WebP) showing every concept.")],
    concepts: Annotated[
        list[str],
        Form(
            description="Concept class names, one field each, e.g. cat and dog; compared case-insensitively.",
            json_schema_extra=CONCEPTS_SCHEMA,
        ),
    ],
    initializers: Annotated[
        list[str],
        Form(
            default_factory=list,
            description="Optional: one initializer word per concept (empty keeps the name).",
            json_schema_extra=INITIALIZERS_SCHEMA,
        ),
    ],
    masks: Annotated[
        list[UploadFile],
        File(
            default_factory=list,
            description="Optional: one grayscale mask per concept (white: the concept), the photo's size.",
            json_schema_extra={"maxItems": MAX_CONCEPTS},
        ),
    ],
    options: Annotated[
        str | None,
        Form(
            description='Optional JSON object of JobOptions, e.g. {"steps": 300, "seed": 0, "fit": "pad"} or '
            '{"method": "custom_diffusion", "preset": "official"}.',
            json_schema_extra=OPTIONS_SCHEMA,
        ),
    ] = None,
    webhook_url: Annotated[
        str | None,
        Form(
            description="Optional http(s) URL told when the job ends.",
            json_schema_extra={
                "maxLength": MAX_WEBHOOK_URL_CHARS,
                "examples": ["https://example.com/hooks/attencraft"],
            },
        ),
    ] = None,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JobOut:
    names = rules.concept_names(concepts)
    initializer_words = rules.initializer_words(initializers, concept_count=len(names))
    job_options = rules.job_options_json(options)
    check_masks_allowed(job_options.method, len(masks))
    webhook = rules.webhook_url(webhook_url)
    if webhook is not None:
        check_webhook_target(webhook, settings.webhook_policy)
    limits = {"max_bytes": settings.max_upload_bytes, "max_pixels": settings.max_image_pixels}
    photo = check_image(image.file, "image", **limits)
    user_masks = [check_image(mask.file, f"masks.{index}", **limits) for index, mask in enumerate(masks)]
    if user_masks:
        check_masks(user_masks, concept_count=len(names), image_size=photo.image.size)
    idempotent = IdempotentRequest.of(
        tenant.id,
        idempotency_key,
        "POST /jobs",
        {
            "concepts": names,
            "initializers": initializer_words,
            "options": job_options.model_dump(mode="json"),
            "webhook_url": webhook,
            "image_sha256": stream_sha256(image.file),
            "masks_sha256": [stream_sha256(mask.file) for mask in masks],
        },
    )
    if (earlier_id := idempotent.earlier_resource(session)) is not None:
        return _replayed(response, get_job(session, tenant.id, earlier_id), signer)

    job_id = new_id()
    input_prefix = f"{job_prefix(tenant.id, job_id)}/input"
    stored_image = store.put(f"{input_prefix}/image.{photo.extension}", image.file, content_type=photo.content_type)
    mask_keys: list[str | None] = [
        store.put(f"{input_prefix}/mask_{index}.png", mask_as_png(mask), content_type="image/png").key
        for index, mask in enumerate(user_masks)
    ] or [None] * len(names)
    job = add_job(
        session,
        job_id=job_id,
        tenant_id=tenant.id,
        concepts=[
            NewConcept(name=name, initializer=initializer, user_mask_key=mask_key)
            for name, initializer, mask_key in zip(names, initializer_words, mask_keys, strict=True)
        ],
        options=job_options.model_dump() | {"steps": job_options.recipe().steps},
        image=stored_image,
        webhook_url=webhook,
    )
    idempotent.remember(session, job.id)
    if (
        earlier_id := commit_once(session, idempotent, lambda: store.delete_prefix(job_prefix(tenant.id, job_id)))
    ) is not None:
        return _replayed(response, get_job(session, tenant.id, earlier_id), signer)  # a concurrent retry's job
    try:
        queue.submit_job(job.id)
    except QueueUnavailable as error:
        fail_unsubmitted_job(session, job.id)
        idempotent.forget(session)  # nothing was started: a retry with the same key starts the job
        session.commit()
        raise ServiceUnavailable(QUEUE_UNAVAILABLE_MESSAGE, code=QUEUE_UNAVAILABLE) from error
    return job_out(job, signer)


def _replayed(response: Response, job: Job, signer: UrlSigner) -> JobOut:
    """The job an earlier request with the same Idempotency-Key created, as it is now."""
    response.headers[REPLAYED_HEADER] = "true"
    return job_out(job, signer)


@router.get("", summary="List jobs, newest first", responses=problem_responses(401, 422))
def list_tenant_jobs(
    tenant: CurrentTenant, session: SessionDep, signer: UrlSignerDep, query: Annotated[JobListQuery, Query()]
) -> JobPage:
    jobs, next_cursor = list_jobs(session, tenant.id, status=query.status, cursor=query.cursor, limit=query.limit)
    return JobPage(items=[job_out(job, signer) for job in jobs], next_cursor=next_cursor)


@router.get("/{job_id}", summary="A job's state, progress, masks and ratios", responses=problem_responses(401, 404))
def read_job(job_id: str, tenant: CurrentTenant, session: SessionDep, signer: UrlSignerDep) -> JobOut:
    return job_out(get_job(session, tenant.id, job_id), signer)


@router.get(
    "/{job_id}/events",
    summary="Follow a job as server-sent events: stages, progress with losses and ETA, masks, the end",
    description="Replays the job's events after `Last-Event-ID` (all of them without it), then streams new ones as "
    "they happen, with a keep-alive comment when idle; the stream ends after the `end` event. Reconnect with the "
    "last `id:` received as `Last-Event-ID` to resume without missing one.",
    response_class=EventStreamResponse,
    responses=EVENT_STREAM_RESPONSES | problem_responses(401, 404, 422),
)
def stream_job_events(
    job_id: str,
    request: Request,
    tenant: CurrentTenant,
    session: SessionDep,
    settings: SettingsDep,
    last_event_id: LastEventId = "",
) -> EventStreamResponse:
    get_job(session, tenant.id, job_id)
    session.close()  # the stream reads with short sessions of its own and the process's event hub
    hub = request.app.state.event_hub
    return event_stream(hub, job_id, tenant.key_id, last_event_id, settings.event_keepalive_seconds)


@router.get(
    "/{job_id}/losses",
    summary="A job's loss history: L_rec and L_attn of every step so far, with the step's sampled concepts",
    responses=problem_responses(401, 404),
)
def read_loss_history(job_id: str, tenant: CurrentTenant, session: SessionDep) -> LossHistory:
    job = get_job(session, tenant.id, job_id)
    return LossHistory(job_id=job.id, items=loss_history(session, job.id))


@router.get(
    "/{job_id}/report",
    summary="A job's measures that need no generation: mask areas and overlaps, sampling ratios, loss curves",
    description="Per concept: the share of the input its mask covers, its sampling ratio, how many steps trained it "
    "alone and the losses of those steps; every pair of masks' IoU (0 when the concepts are apart); the job's loss "
    "curve in at most 20 stretches. A running job reports what it has so far. Scores of generated images are "
    "`attencraft eval`'s.",
    responses=problem_responses(401, 404),
)
def read_job_report(job_id: str, tenant: CurrentTenant, session: SessionDep, store: StoreDep) -> JobReport:
    job = get_job(session, tenant.id, job_id)
    return job_report(job, loss_history(session, job.id), store.read_bytes)


@router.post(
    "/{job_id}/cancel",
    status_code=202,
    summary="Cancel a job (a running job stops at its next step)",
    responses=problem_responses(401, 404, 409),
)
def cancel_job(
    job_id: str, tenant: CurrentTenant, session: SessionDep, store: StoreDep, signer: UrlSignerDep
) -> JobOut:
    job = get_job(session, tenant.id, job_id)
    ended_now = request_cancel(session, job)
    session.commit()
    if ended_now:  # a job requeued after its worker died may have left checkpoints
        store.delete_prefix(checkpoints_prefix(tenant.id, job.id))
    session.refresh(job)
    return job_out(job, signer)


@router.get(
    "/{job_id}/artifacts",
    summary="Signed download URLs of a job's artifacts",
    responses=problem_responses(401, 404),
)
def list_artifacts(job_id: str, tenant: CurrentTenant, session: SessionDep, signer: UrlSignerDep) -> ArtifactList:
    return artifact_list(get_job(session, tenant.id, job_id), signer)


@router.get(
    "/{job_id}/export",
    summary="Signed download URLs of the concept set in another tool's layout",
    description="`diffusers`: the Custom Diffusion layout (`pytorch_custom_diffusion_weights.safetensors`, one "
    "`<placeholder>.safetensors` embedding per concept, `attencraft_export.json`); download the files into one "
    "folder and install it with `attencraft_core.export.load_custom_diffusion`.",
    responses=problem_responses(401, 404, 409, 422),
)
def export_concept_set(
    job_id: str,
    tenant: CurrentTenant,
    session: SessionDep,
    signer: UrlSignerDep,
    format: Annotated[ExportFormat, Query(description="The layout.")],
) -> ArtifactList:
    job = get_job(session, tenant.id, job_id)
    if job.status != JobStatus.SUCCEEDED:
        raise Conflict(f"Job {job.id} has not succeeded ({job.status.value}); it has nothing to export.")
    return artifact_list(job, signer, under=f"{format.value}/")


def _zip_artifacts(job: Job, store: ObjectStore, export: ExportFormat | None) -> IO[bytes]:
    """The job's own artifacts (or, given a format, its export's files) zipped under their file names, rewound."""
    wanted = (lambda name: name.startswith(f"{export.value}/")) if export else (lambda name: "/" not in name)
    archive = tempfile.SpooledTemporaryFile(max_size=ARCHIVE_MEMORY_BYTES)  # noqa: SIM115 (closed by _chunks)
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as writer:
        for artifact in job.artifacts:
            if wanted(artifact.name):
                writer.writestr(artifact.key.rsplit("/", 1)[-1], store.read_bytes(artifact.key))
    archive.seek(0)
    return archive


def _chunks(archive: IO[bytes]) -> Iterator[bytes]:
    with archive:
        while chunk := archive.read(ARCHIVE_CHUNK_BYTES):
            yield chunk


ZIP_RESPONSE = {200: {"description": "A zip file.", "content": {"application/zip": {"schema": {"type": "string"}}}}}


@router.get(
    "/{job_id}/archive",
    summary="Download the concept set as one zip (with `format`, the export in another tool's layout)",
    response_class=StreamingResponse,
    responses=ZIP_RESPONSE | problem_responses(401, 404, 409, 422),
)
def download_archive(
    job_id: str,
    tenant: CurrentTenant,
    session: SessionDep,
    store: StoreDep,
    format: Annotated[ExportFormat | None, Query(description="An export layout; default: AttenCraft's files.")] = None,
) -> StreamingResponse:
    job = get_job(session, tenant.id, job_id)
    if job.status != JobStatus.SUCCEEDED:
        raise Conflict(f"Job {job.id} has not succeeded ({job.status.value}); it has nothing to download.")
    name = f"attencraft-{job.id}{f'-{format.value}' if format else ''}.zip"
    return StreamingResponse(
        _chunks(_zip_artifacts(job, store, format)),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
