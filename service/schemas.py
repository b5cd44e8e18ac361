"""Pydantic shapes of the HTTP API (requests, responses, problems); separate from the ORM rows."""

import enum
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from service.models import DeliveryStatus, GenerationStatus, JobStatus

MAX_STEPS = 2000
MAX_SEED = 2**31 - 1
MAX_IMAGES_PER_GENERATION = 8
MAX_SAMPLING_STEPS = 150
MIN_IMAGE_SIDE = 64
MAX_IMAGE_SIDE = 1024
MAX_PROMPT_CHARS = 2000


class JobOptions(BaseModel):
    """Training options a client may set; anything else is rejected."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(default=300, ge=1, le=MAX_STEPS, description="Training steps.")
    seed: int = Field(default=0, ge=0, le=MAX_SEED, description="Random seed of the whole job.")


class JobListQuery(BaseModel):
    """Query parameters of GET /jobs; unknown ones are rejected so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid")

    status: JobStatus | None = Field(default=None, description="Only jobs in this state.")
    cursor: str | None = Field(default=None, max_length=256, description="next_cursor of the previous page.")
    limit: int = Field(default=20, ge=1, le=100)


class Progress(BaseModel):
    step: int
    total: int


class StageTiming(BaseModel):
    started_at: datetime
    finished_at: datetime | None
    seconds: float | None


class JobError(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. concept_not_localized.")
    message: str = Field(description="What went wrong, for a person.")


class ConceptSummary(BaseModel):
    id: str
    name: str
    placeholder: str = Field(description="Write this in prompts, e.g. <cat>.")
    initializer: str | None
    ratio: float | None = Field(description="Adaptive sampling ratio, once estimated.")
    mask_url: str | None = Field(description="Signed URL of the concept's mask PNG, once known.")


class JobOut(BaseModel):
    id: str
    status: JobStatus
    cancel_requested: bool
    progress: Progress
    concepts: list[ConceptSummary]
    options: JobOptions
    webhook_url: str | None
    stage_timings: dict[str, StageTiming]
    error: JobError | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class ArtifactOut(BaseModel):
    name: str = Field(description="weights, metadata, overlay, loss_curve, mask_<i>, tokenizer, diffusers/<file>, ...")
    url: str
    expires_at: datetime
    size: int
    sha256: str
    content_type: str


class ExportFormat(enum.StrEnum):
    DIFFUSERS = "diffusers"


class ArtifactList(BaseModel):
    job_id: str
    items: list[ArtifactOut]


class ConceptOut(BaseModel):
    id: str
    name: str
    placeholder: str
    class_name: str
    initializer: str | None
    job_id: str
    job_status: JobStatus
    ratio: float | None
    mask_url: str | None


class Scheduler(enum.StrEnum):
    PNDM = "pndm"
    DDIM = "ddim"
    DPM_SOLVER_PP = "dpmsolver++"


class GenerationOptions(BaseModel):
    """Sampling settings; the defaults follow the paper's evaluation (PNDM, 50 steps, guidance 7.5)."""

    model_config = ConfigDict(extra="forbid")

    num_images: int = Field(default=1, ge=1, le=MAX_IMAGES_PER_GENERATION)
    steps: int = Field(default=50, ge=1, le=MAX_SAMPLING_STEPS, description="Denoising steps.")
    guidance_scale: float = Field(default=7.5, ge=0, le=30)
    width: int | None = Field(
        default=None, ge=MIN_IMAGE_SIDE, le=MAX_IMAGE_SIDE, description="Multiple of 8; default: the model's size."
    )
    height: int | None = Field(
        default=None, ge=MIN_IMAGE_SIDE, le=MAX_IMAGE_SIDE, description="Multiple of 8; default: the model's size."
    )
    scheduler: Scheduler = Scheduler.PNDM

    @field_validator("width", "height")
    @classmethod
    def _multiple_of_8(cls, size: int | None) -> int | None:
        if size is not None and size % 8:
            raise ValueError(f"must be a multiple of 8, not {size}")
        return size


def _as_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


class GenerateRequest(GenerationOptions):
    concept_ids: Annotated[list[str], BeforeValidator(_as_list)] = Field(
        min_length=1, max_length=16, description="A concept id, or a list of concept ids of one job (its concept set)."
    )
    prompt: str = Field(
        min_length=1, max_length=MAX_PROMPT_CHARS, description="Names concepts by placeholder: `<cat> and <dog>`."
    )
    negative_prompt: str = Field(default="", max_length=MAX_PROMPT_CHARS)
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED, description="Image i uses seed + i; default: random.")

    def options(self) -> GenerationOptions:
        return GenerationOptions.model_validate(self.model_dump(include=set(GenerationOptions.model_fields)))


class GeneratedImage(BaseModel):
    url: str
    expires_at: datetime


class GenerationTimings(BaseModel):
    queued_seconds: float | None = Field(description="From submission until a worker started it.")
    running_seconds: float | None = Field(description="From start until the images were stored.")


class GenerationOut(BaseModel):
    id: str
    status: GenerationStatus
    job_id: str
    concept_ids: list[str]
    prompt: str
    negative_prompt: str
    options: GenerationOptions
    seed: int = Field(description="The seed used; image i was drawn with seed + i.")
    images: list[GeneratedImage]
    error: JobError | None
    timings: GenerationTimings
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class FieldProblem(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details, served as application/problem+json."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[FieldProblem] | None = None


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


class WebhookAttemptOut(BaseModel):
    at: datetime
    status_code: int | None = Field(description="The receiver's HTTP status; null when no response came.")
    error: str | None = Field(description="Why no response came (timeout, connection refused, refused target).")


class WebhookDeliveryOut(BaseModel):
    webhook_id: str = Field(description="The webhook-id header, the same on every attempt.")
    event_type: str = Field(description="job.succeeded, job.failed or job.canceled.")
    url: str
    status: DeliveryStatus
    attempts: list[WebhookAttemptOut]
    next_attempt_at: datetime | None = Field(description="When the next retry is due, while pending.")
    created_at: datetime


class WebhookDeliveryList(BaseModel):
    job_id: str
    items: list[WebhookDeliveryOut]


class WebhookSecret(BaseModel):
    secret: str = Field(description="The tenant's whsec_ secret: verify webhook-signature with it (Standard Webhooks).")
