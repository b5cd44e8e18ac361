"""Generation with an applied concept set (SPEC 2.7)."""

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, PNDMScheduler
from PIL import Image

from attencraft_contract.rules import PLACEHOLDER
from attencraft_core.errors import InvalidInputError, PromptTooLongError, UnknownPlaceholderError
from attencraft_core.models import BaseModel, ConceptWeights

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


def _sampling_settings(request: GenerationRequest) -> tuple[object, ...]:
    return (request.steps, request.guidance_scale, request.height, request.width, request.scheduler)


def generate_batch(
    model: BaseModel,
    weights: ConceptWeights | None,
    requests: Sequence[GenerationRequest],
    *,
    max_batch_images: int = 8,
) -> list[list[Image.Image]]:
    """Images for several requests on one concept set, applied once; the base is restored bit-identically after.

    Requests with the same sampling settings share pipeline batches of up to `max_batch_images`. Image j of a
    request comes from a generator seeded `seed + j`, so an image is the same whether it was batched or not.
    """
    for request in requests:
        check_request(request)
    pipeline = model.pipeline
    original_scheduler = pipeline.scheduler
    applied = model.applied(weights) if weights is not None else nullcontext({})
    results: list[list[Image.Image]] = [[] for _ in requests]
    try:
        with applied as token_for_placeholder:
            jobs = []  # (request index, prompt, negative prompt, seed) per image
            for index, request in enumerate(requests):
                prompt = internal_prompt(request.prompt, token_for_placeholder)
                negative_prompt = internal_prompt(request.negative_prompt, token_for_placeholder)
                for text in (prompt, negative_prompt):
                    check_prompt_length(model, text)
                jobs += [(index, prompt, negative_prompt, request.seed + j) for j in range(request.num_images)]
            groups: dict[tuple[object, ...], list[tuple[int, str, str, int]]] = {}
            for job in jobs:
                groups.setdefault(_sampling_settings(requests[job[0]]), []).append(job)
            for group in groups.values():
                settings = requests[group[0][0]]
                scheduler_class, overrides = SCHEDULERS[settings.scheduler]
                pipeline.scheduler = scheduler_class.from_config(original_scheduler.config, **overrides)
                for start in range(0, len(group), max_batch_images):
                    chunk = group[start : start + max_batch_images]
                    with torch.no_grad(), model.autocast(), model.generating() as sampling:
                        latents = sampling(
                            prompt=[prompt for _, prompt, _, _ in chunk],
                            negative_prompt=[negative for _, _, negative, _ in chunk],
                            num_inference_steps=settings.steps,
                            guidance_scale=settings.guidance_scale,
                            height=settings.height,
                            width=settings.width,
                            generator=[torch.Generator(device="cpu").manual_seed(seed) for *_, seed in chunk],
                            output_type="latent",
                        ).images
                    images = model.decode_latents(latents)
                    for (index, *_), image in zip(chunk, images, strict=True):
                        results[index].append(image)
    finally:
        pipeline.scheduler = original_scheduler
    return results


def generate(model: BaseModel, weights: ConceptWeights | None, request: GenerationRequest) -> list[Image.Image]:
    """Images for one request with the concept set applied; the base model is restored bit-identically after."""
    return generate_batch(model, weights, [request])[0]
