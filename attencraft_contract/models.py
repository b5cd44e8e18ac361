"""The API's request and response shapes, the same classes on the server and in the client."""

import enum
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from attencraft_contract.limits import (
    IMAGE_SIDE_MULTIPLE,
    MAX_CONCEPTS,
    MAX_CURSOR_CHARS,
    MAX_GUIDANCE_SCALE,
    MAX_IMAGE_SIDE,
    MAX_IMAGES_PER_GENERATION,
    MAX_PAGE_SIZE,
    MAX_PRIOR_IMAGES,
    MAX_PROMPT_CHARS,
    MAX_SAMPLING_STEPS,
    MAX_SEED,
    MAX_STEPS,
    MIN_IMAGE_SIDE,
)
from attencraft_contract.methods import Method, MultiConceptLoss, Preset, Ratios, Recipe, StageName, build_recipe

CURSOR_PATTERN = r"^[A-Za-z0-9_-]*$"  # unpadded base64url
TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"  # no control characters but tabs and line breaks


def _number_only(value: object) -> object:
    """Counts and scales are JSON numbers: "2" or true is a mistake, not 2 or 1 (64.0 is 64, as JSON Schema says)."""
    if isinstance(value, str | bool):
        raise ValueError("should be a number, not text or true/false")
    return value


NumberOnly = BeforeValidator(_number_only)


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    MASKING = "masking"
    ESTIMATING = "estimating"
    TRAINING = "training"
    SAVING = "saving"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED})
RUNNING_STATUSES = frozenset({JobStatus.MASKING, JobStatus.ESTIMATING, JobStatus.TRAINING, JobStatus.SAVING})


class GenerationStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        return self in (GenerationStatus.SUCCEEDED, GenerationStatus.FAILED)


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class ImageFit(enum.StrEnum):
    """How a photo that is not square becomes the model's square input (masks follow the same way)."""

    CROP = "crop"  # scale the shorter side to the resolution, cut the centre square
    PAD = "pad"  # scale the longer side to the resolution, fill the rest with the photo's mean colour


class JobOptions(BaseModel):
    """Training options a client may set; anything else is rejected. Unset method settings keep the preset's."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"steps": 300, "seed": 0, "fit": "crop"},
                {"method": "custom_diffusion", "preset": "official", "prior_images": 50},
                {"method": "attencraft", "ratios": "equal", "omega": 0.5},
            ]
        },
    )

    steps: Annotated[int | None, NumberOnly] = Field(
        default=None, ge=1, le=MAX_STEPS, description="Training steps; default: the method's preset (AttenCraft 300)."
    )
    seed: Annotated[int, NumberOnly] = Field(default=0, ge=0, le=MAX_SEED, description="Random seed of the whole job.")
    fit: ImageFit = Field(default=ImageFit.CROP, description="A photo that is not square: `crop` (centre) or `pad`.")
    method: Method = Field(default=Method.ATTENCRAFT, description="The training method (README: Methods).")
    preset: Preset = Field(
        default=Preset.ATTENCRAFT_COMPARISON,
        description="`attencraft_comparison`: the settings the AttenCraft paper ran; `official`: the authors' code.",
    )
    prior_preservation: bool | None = Field(
        default=None, description="Regularise with class images the base model draws; default: the method's own."
    )
    prior_images: int | None = Field(
        default=None, ge=1, le=MAX_PRIOR_IMAGES, description="Class images per class prompt; default: the preset's."
    )
    ratios: Ratios | None = Field(default=None, description="AttenCraft ablation: single-concept sampling ratios.")
    multi_concept_loss: MultiConceptLoss | None = Field(
        default=None, description="AttenCraft ablation: what a multi-concept step back-propagates."
    )
    omega: float | None = Field(
        default=None, ge=0, le=1, description="AttenCraft ablation: share of multi-concept steps (default 0.3)."
    )

    def recipe(self) -> Recipe:
        """The effective training recipe, or an InputError (e.g. an ablation switch with another method)."""
        return build_recipe(
            self.method,
            self.preset,
            steps=self.steps,
            prior_preservation=self.prior_preservation,
            prior_images=self.prior_images,
            ratios=self.ratios,
            multi_concept_loss=self.multi_concept_loss,
            omega=self.omega,
        )


class MasksSource(enum.StrEnum):
    UPLOADED = "uploaded"
    ATTENTION = "attention"
    NONE = "none"


class StageOut(BaseModel):
    name: StageName = Field(description="What the stage trains: `identifiers` or `identifiers+kv`.")
    steps: int
    learning_rate: float
    trains_kv: bool = Field(description="Whether W_k, W_v train in this stage (the identifiers always do).")


class RecipeOut(BaseModel):
    """The method a job trains with and its effective hyper-parameters."""

    method: Method
    preset: Preset
    steps: int
    stages: list[StageOut]
    token_init: str
    prompt_expansion: str = Field(description="How `<cat>` is written to the model: `token` or `token+class`.")
    attention_weight: float
    prior_preservation: bool
    prior_images: int
    prior_weight: float
    detach_sot_kv: bool = Field(description="No gradient into W_k, W_v through the start-of-text position.")
    hflip: bool = Field(description="Each step mirrors the photo and its masks with probability 0.5.")
    resize_augmentation: bool = Field(
        description="Custom Diffusion's augmentation: each step shrinks or enlarges the photo at random."
    )
    ratios: Ratios | None = Field(default=None, description="AttenCraft only.")
    multi_concept_loss: MultiConceptLoss | None = Field(default=None, description="AttenCraft only.")
    omega: float | None = Field(default=None, description="AttenCraft only.")


class JobListQuery(BaseModel):
    """Query parameters of GET /jobs; unknown ones are rejected so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid")

    status: JobStatus | None = Field(default=None, description="Only jobs in this state.")
    cursor: str | None = Field(
        default=None, max_length=MAX_CURSOR_CHARS, pattern=CURSOR_PATTERN, description="next_cursor of the last page."
    )
    limit: int = Field(default=20, ge=1, le=MAX_PAGE_SIZE)


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
    image_url: str | None = Field(
        default=None, description="Signed URL of the uploaded photo (null in webhook payloads)."
    )
    options: JobOptions
    recipe: RecipeOut = Field(description="The method and its effective hyper-parameters.")
    masks_source: MasksSource = Field(
        description="Where the method's masks come from: `uploaded`, `attention` (AttenCraft's stage 1) or `none` "
        "(the method reads no masks)."
    )
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
    name: str = Field(
        description="weights, metadata, overlay, loss_curve, mask_<i>, heatmap_<i>_before and heatmap_<i>_after (the "
        "concept's attention before and after the random walk, from masking on), tokenizer, diffusers/<file>, ..."
    )
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


ImageSide = Annotated[
    int,
    Field(
        ge=MIN_IMAGE_SIDE,
        le=MAX_IMAGE_SIDE,
        multiple_of=IMAGE_SIDE_MULTIPLE,
        description=f"Multiple of {IMAGE_SIDE_MULTIPLE}; default: the model's size.",
    ),
    NumberOnly,
]


class GenerationOptions(BaseModel):
    """Sampling settings; the defaults follow the paper's evaluation (PNDM, 50 steps, guidance 7.5)."""

    model_config = ConfigDict(extra="forbid")

    num_images: Annotated[int, NumberOnly] = Field(default=1, ge=1, le=MAX_IMAGES_PER_GENERATION)
    steps: Annotated[int, NumberOnly] = Field(default=50, ge=1, le=MAX_SAMPLING_STEPS, description="Denoising steps.")
    guidance_scale: Annotated[float, NumberOnly] = Field(default=7.5, ge=0, le=MAX_GUIDANCE_SCALE)
    width: ImageSide | None = None
    height: ImageSide | None = None
    scheduler: Scheduler = Scheduler.PNDM


def _as_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


class GenerateRequest(GenerationOptions):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "concept_ids": ["6f1c2a4e-0d3b-4c8e-9a51-2b7d9e0f4c13", "0b9e8d7c-6a5f-4e3d-8c2b-1a0f9e8d7c6b"],
                    "prompt": "<cat> and <dog> in Paris",
                    "num_images": 2,
                    "seed": 7,
                }
            ]
        }
    )

    concept_ids: Annotated[list[str], BeforeValidator(_as_list)] = Field(
        min_length=1,
        max_length=MAX_CONCEPTS,
        description="A concept id, or a list of concept ids of one job (its concept set).",
    )
    prompt: str = Field(
        min_length=1,
        max_length=MAX_PROMPT_CHARS,
        pattern=TEXT_PATTERN,
        description="Names concepts by placeholder: `<cat> and <dog>`.",
    )
    negative_prompt: str = Field(default="", max_length=MAX_PROMPT_CHARS, pattern=TEXT_PATTERN)
    seed: Annotated[int, Field(ge=0, le=MAX_SEED), NumberOnly] | None = Field(
        default=None, description="Image i uses seed + i; default: random."
    )

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


class EventType(enum.StrEnum):
    """The `event:` field of GET /jobs/{id}/events and GET /generations/{id}/events; `data:` is a JSON object."""

    STATUS = "status"  # {"status"}: the job entered a stage (or was requeued); a generation started
    # {"status", "step", "total", "training_stage": {"name", "number", "count"}, "eta_seconds", "losses": [LossRecord]}
    PROGRESS = "progress"
    MASKS = "masks"  # {"count"}: the concepts' masks are stored (their URLs: GET /jobs/{id})
    HEATMAPS = "heatmaps"  # {"count"}: heatmap_<i>_before/after are stored (GET /jobs/{id}/artifacts)
    RATIOS = "ratios"  # {"ratios": [float, ...]}: the sampling ratios, in concept order
    END = "end"  # {"status", "error"}: the terminal state; the stream ends after it


class LossRecord(BaseModel):
    """One training step: which concepts it sampled and its losses (SPEC 2.5)."""

    step: int
    subset: list[str] = Field(description="The concepts of the step's sampled subset.")
    timestep: int
    loss: float
    reconstruction: float = Field(description="L_rec, the masked reconstruction loss.")
    attention: float = Field(description="L_attn, the cross-attention loss.")


class LossHistory(BaseModel):
    job_id: str
    items: list[LossRecord] = Field(description="One record per step trained so far, in step order.")


class LossPoint(BaseModel):
    """Mean losses of the steps trained in one stretch of training (from_step to to_step, both included)."""

    from_step: int
    to_step: int
    steps: int = Field(description="How many steps of the stretch are counted (a concept's curve: its own steps).")
    loss: float
    reconstruction: float = Field(description="L_rec, the masked reconstruction loss.")
    attention: float = Field(description="L_attn, the cross-attention loss.")


class ConceptReport(BaseModel):
    name: str
    placeholder: str
    ratio: float | None = Field(description="Adaptive sampling ratio, once estimated.")
    mask_area: float | None = Field(
        description="Share of the (square) input its mask covers, 0 to 1; null without a mask."
    )
    single_steps: int = Field(description="Steps so far that trained this concept alone.")
    loss_curve: list[LossPoint] = Field(
        description="Its single-concept steps' losses, in the stretches of the job's curve: a concept learnt out of "
        "step with the others shows here."
    )


class MaskOverlap(BaseModel):
    concepts: list[str] = Field(description="Two concept names.")
    iou: float = Field(description="Intersection over union of their masks: 0 when they are apart, as they should be.")


class JobReport(BaseModel):
    """What a job measures without drawing an image (a full evaluation is `attencraft eval`)."""

    job_id: str
    status: JobStatus
    method: Method
    masks_source: MasksSource
    steps_trained: int = Field(description="Steps with a loss record so far.")
    total_steps: int
    concepts: list[ConceptReport]
    mask_overlaps: list[MaskOverlap] = Field(description="Every pair of concepts whose masks are known.")
    loss_curve: list[LossPoint] = Field(
        description="All steps' mean losses in at most 20 equal stretches of the training (every step: /losses)."
    )


class GenerationList(BaseModel):
    job_id: str
    items: list[GenerationOut] = Field(description="The job's generations, newest first.")


class FieldProblem(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details, served as application/problem+json."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "urn:attencraft:problem:invalid_concept_name",
                    "title": "The request is not valid",
                    "status": 422,
                    "detail": "Concept name 'teddy bear' is not a plain word: use 1 to 32 letters, digits, '_' or '-'.",
                    "code": "invalid_concept_name",
                    "errors": [{"field": "concepts.1", "message": "not a plain word"}],
                }
            ]
        }
    )

    type: str
    title: str
    status: int
    detail: str
    code: str = Field(description="Stable machine-readable code, e.g. invalid_concept_name.")
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
