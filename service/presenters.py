"""Turn stored rows into API shapes, signing object keys into download URLs."""

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urljoin

from service.models import Concept, Job, utc_now
from service.schemas import (
    ArtifactList,
    ArtifactOut,
    ConceptOut,
    ConceptSummary,
    JobError,
    JobOptions,
    JobOut,
    Progress,
    StageTiming,
)
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


def _mask_url(concept: Concept, signer: UrlSigner) -> str | None:
    key = concept.mask_key or concept.user_mask_key
    return signer.url(key) if key else None


def job_out(job: Job, signer: UrlSigner) -> JobOut:
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
        options=JobOptions.model_validate(job.options),
        webhook_url=job.webhook_url,
        stage_timings={stage: _stage_timing(timing) for stage, timing in job.stage_timings.items()},
        error=JobError(code=job.error_code, message=job.error_message or "") if job.error_code else None,
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


def artifact_list(job: Job, signer: UrlSigner) -> ArtifactList:
    return ArtifactList(
        job_id=job.id,
        items=[
            ArtifactOut(
                name=artifact.name,
                url=signer.url(artifact.key),
                expires_at=signer.expires_at,
                size=artifact.size,
                sha256=artifact.sha256,
                content_type=artifact.content_type,
            )
            for artifact in job.artifacts
        ],
    )
