"""Generation with an applied concept set (SPEC 2.7)."""

import re
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, PNDMScheduler
from PIL import Image

from attencraft_core.errors import InvalidInputError, PromptTooLongError, UnknownPlaceholderError
from attencraft_core.models import BaseModel, ConceptWeights
from attencraft_core.training import autocast

PLACEHOLDER = re.compile(r"<[A-Za-z0-9_\-]+>")
SCHEDULERS = {
    "pndm": (PNDMScheduler, {}),
    "ddim": (DDIMScheduler, {}),
    "dpmsolver++": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++"}),
}


@dataclass(frozen=True)
class GenerationRequest:
    """Defaults follow the paper's evaluation: PNDM, 50 steps, guidance 7.5."""

    prompt: str
    negative_prompt: str = ""
    num_images: int = 1
    seed: int = 0
    steps: int = 50
    guidance_scale: float = 7.5
    height: int | None = None
    width: int | None = None
    scheduler: str = "pndm"


def internal_prompt(prompt: str, token_for_placeholder: dict[str, str]) -> str:
    """Replace each `<name>` placeholder with its identifier token; unknown placeholders are an error."""
    named = PLACEHOLDER.findall(prompt)
    unknown = sorted({p for p in named if p not in token_for_placeholder})
    if unknown:
        raise UnknownPlaceholderError(unknown, sorted(token_for_placeholder))
    return PLACEHOLDER.sub(lambda match: token_for_placeholder[match.group(0)], prompt)


def check_request(request: GenerationRequest) -> None:
    if request.scheduler not in SCHEDULERS:
        raise InvalidInputError(f"Unknown scheduler {request.scheduler!r}; choose one of {', '.join(SCHEDULERS)}.")
    if request.num_images < 1 or request.steps < 1:
        raise InvalidInputError("num_images and steps must be at least 1.")
    for size in (request.height, request.width):
        if size is not None and (size <= 0 or size % 8):
            raise InvalidInputError(f"Image sizes must be positive multiples of 8, not {size}.")


def check_prompt_length(model: BaseModel, prompt: str) -> None:
    tokenizer = model.pipeline.tokenizer
    length = len(tokenizer(prompt).input_ids)
    if length > tokenizer.model_max_length:
        raise PromptTooLongError(length, tokenizer.model_max_length)


def generate(model: BaseModel, weights: ConceptWeights | None, request: GenerationRequest) -> list[Image.Image]:
    """Images for the request with the concept set applied; the base model is restored bit-identically after."""
    check_request(request)
    pipeline = model.pipeline
    original_scheduler = pipeline.scheduler
    scheduler_class, overrides = SCHEDULERS[request.scheduler]
    applied = model.applied(weights) if weights is not None else nullcontext({})
    try:
        with applied as token_for_placeholder:
            prompt = internal_prompt(request.prompt, token_for_placeholder)
            negative_prompt = internal_prompt(request.negative_prompt, token_for_placeholder)
            for text in (prompt, negative_prompt):
                check_prompt_length(model, text)
            pipeline.scheduler = scheduler_class.from_config(original_scheduler.config, **overrides)
            generator = torch.Generator(device="cpu").manual_seed(request.seed)
            with torch.no_grad(), autocast(model):
                return pipeline(
                    prompt=prompt,
                    negative_prompt=negative_prompt or None,
                    num_images_per_prompt=request.num_images,
                    num_inference_steps=request.steps,
                    guidance_scale=request.guidance_scale,
                    height=request.height,
                    width=request.width,
                    generator=generator,
                    output_type="pil",
                ).images
    finally:
        pipeline.scheduler = original_scheduler
