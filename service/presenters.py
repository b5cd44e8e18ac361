"""Turn stored rows into API shapes, signing object keys into download URLs."""

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urljoin

from attencraft_contract.methods import METHODS_WITHOUT_MASKS
from attencraft_contract.models import (
    ArtifactList,
    ArtifactOut,
    ConceptOut,
    ConceptSummary,
    GeneratedImage,
    GenerationOptions,
    GenerationOut,
    GenerationTimings,
    JobError,
    JobOptions,
    JobOut,
    MasksSource,
    Progress,
    RecipeOut,
    StageTiming,
    WebhookAttemptOut,
    WebhookDeliveryList,
    WebhookDeliveryOut,
)
from service.models import Concept, DeliveryStatus, Generation, Job, WebhookDelivery, utc_now
from service.storage import ObjectStore


class UrlSigner:
    """Signs object keys into absolute URLs that expire together."""

    def __init__(self, store: ObjectStore, *, api_base_url: str, expires_in: int) -> None:
        self._store = store
        self._api_base_url = api_base_url
        self.expires_in = expires_in
        self.expires_at = utc_now() + timedelta(seconds=expires_in)

    def url(self, key: str) -> str:
        return urljoin(self._api_base_url, self._store.signed_url(key, expires_in=self.expires_in))


def _stage_timing(timing: dict[str, Any]) -> StageTiming:
    started_at = datetime.fromisoformat(timing["started_at"])
    finished_at = datetime.fromisoformat(timing["finished_at"]) if timing.get("finished_at") else None
    seconds = (finished_at - started_at).total_seconds() if finished_at else None
    return StageTiming(started_at=started_at, finished_at=finished_at, seconds=seconds)


def _error(code: str | None, message: str | None) -> JobError | None:
    return JobError(code=code, message=message or "") if code else None


def _mask_url(concept: Concept, signer: UrlSigner | None) -> str | None:
    key = concept.mask_key or concept.user_mask_key
    return signer.url(key) if key and signer else None


def masks_source(job: Job, options: JobOptions) -> MasksSource:
    if options.method in METHODS_WITHOUT_MASKS:
        return MasksSource.NONE
    return MasksSource.UPLOADED if any(c.user_mask_key for c in job.concepts) else MasksSource.ATTENTION


def job_out(job: Job, signer: UrlSigner | None) -> JobOut:
    """The job as the API shows it; without a signer (webhook payloads) URLs are null: signed URLs expire."""
    options = JobOptions.model_validate(job.options)
    return JobOut(
        id=job.id,
        status=job.status,
        cancel_requested=job.cancel_requested,
        progress=Progress(step=job.progress_step, total=job.progress_total),
        concepts=[
            ConceptSummary(
                id=concept.id,
                name=concept.name,
                placeholder=concept.placeholder,
                initializer=concept.initializer,
                ratio=concept.ratio,
                mask_url=_mask_url(concept, signer),
            )
            for concept in job.concepts
        ],
        image_url=signer.url(job.image_key) if signer else None,
        options=options,
        recipe=RecipeOut.model_validate(options.recipe().as_dict()),
        masks_source=masks_source(job, options),
        webhook_url=job.webhook_url,
        stage_timings={stage: _stage_timing(timing) for stage, timing in job.stage_timings.items()},
        error=_error(job.error_code, job.error_message),
        created_at=job.created_at,
        updated_at=job.updated_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


def concept_out(concept: Concept, signer: UrlSigner) -> ConceptOut:
    return ConceptOut(
        id=concept.id,
        name=concept.name,
        placeholder=concept.placeholder,
        class_name=concept.name,
        initializer=concept.initializer,
        job_id=concept.job_id,
        job_status=concept.job.status,
        ratio=concept.ratio,
        mask_url=_mask_url(concept, signer),
    )


def artifact_list(job: Job, signer: UrlSigner, *, under: str = "") -> ArtifactList:
    """The job's artifacts whose names start with ``under``, named without it."""
    return ArtifactList(
        job_id=job.id,
        items=[
            ArtifactOut(
                name=artifact.name.removeprefix(under),
                url=signer.url(artifact.key),
                expires_at=signer.expires_at,
                size=artifact.size,
                sha256=artifact.sha256,
                content_type=artifact.content_type,
            )
            for artifact in job.artifacts
            if artifact.name.startswith(under)
        ],
    )


def _seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start and end else None


def generation_out(generation: Generation, signer: UrlSigner) -> GenerationOut:
    return GenerationOut(
        id=generation.id,
        status=generation.status,
        job_id=generation.job_id,
        concept_ids=generation.concept_ids,
        prompt=generation.prompt,
        negative_prompt=generation.negative_prompt,
        options=GenerationOptions.model_validate(generation.options),
        seed=generation.seed,
        images=[GeneratedImage(url=signer.url(key), expires_at=signer.expires_at) for key in generation.image_keys],
        error=_error(generation.error_code, generation.error_message),
        timings=GenerationTimings(
            queued_seconds=_seconds_between(generation.created_at, generation.started_at),
            running_seconds=_seconds_between(generation.started_at, generation.finished_at),
        ),
        created_at=generation.created_at,
        started_at=generation.started_at,
        finished_at=generation.finished_at,
    )


def delivery_list(job_id: str, deliveries: list[WebhookDelivery]) -> WebhookDeliveryList:
    return WebhookDeliveryList(
        job_id=job_id,
        items=[
            WebhookDeliveryOut(
                webhook_id=delivery.id,
                event_type=delivery.event_type,
                url=delivery.url,
                status=delivery.status,
                attempts=[WebhookAttemptOut.model_validate(entry) for entry in delivery.attempt_log],
                next_attempt_at=delivery.next_attempt_at if delivery.status == DeliveryStatus.PENDING else None,
                created_at=delivery.created_at,
            )
            for delivery in deliveries
        ],
    )
