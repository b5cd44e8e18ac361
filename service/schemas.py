"""Pydantic shapes of the HTTP API (requests, responses, problems); separate from the ORM rows."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from service.models import JobStatus

MAX_STEPS = 2000
MAX_SEED = 2**31 - 1


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
    name: str = Field(description="weights, metadata, overlay, loss_curve, mask_<i>, ...")
    url: str
    expires_at: datetime
    size: int
    sha256: str
    content_type: str


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
