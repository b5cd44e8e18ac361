"""One image and N >= 2 concept names in, a trained concept set out: masks -> ratios -> training (SPEC 2.3-2.5)."""

import importlib.metadata
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum

import torch
from PIL import Image

from attencraft_contract import rules
from attencraft_contract.errors import InputError
from attencraft_contract.models import ImageFit
from attencraft_core.artifacts import ConceptSet
from attencraft_core.config import MaskConfig, RatioConfig, TrainingConfig
from attencraft_core.errors import ConceptNotLocalizedError, InvalidInputError, TrainingCanceled
from attencraft_core.images import heatmap_images, mask_images, masks_from_images, prepare_image
from attencraft_core.masks import (
    AttentionHeatmaps,
    area_fractions,
    attention_heatmaps,
    localized,
    resize_masks,
    winner_masks,
)
from attencraft_core.models import BaseModel
from attencraft_core.ratios import attention_scores, sampling_probabilities, sampling_ratios
from attencraft_core.training import (
    FeatureRetainingTrainer,
    StepRecord,
    TrainingCheckpoint,
    concept_prompt,
    noise_scheduler,
    token_positions,
)

MASK_SEED_OFFSET = 0
RATIO_SEED_OFFSET = 1


class Stage(StrEnum):
    MASKING = "masking"
    ESTIMATING = "estimating"
    TRAINING = "training"
    SAVING = "saving"


@dataclass(frozen=True)
class ConceptSpec:
    name: str
    initializer: str | None = None  # overrides the class name as the word that initialises the token


@dataclass
class LearnCallbacks:
    on_stage: Callable[[Stage], None] = lambda stage: None
    on_masks: Callable[[list[Image.Image]], None] = lambda masks: None
    # Per concept, the attention before and after the random walk (masks from attention only, not uploaded ones).
    on_heatmaps: Callable[[list[Image.Image], list[Image.Image]], None] = lambda before, after: None
    on_ratios: Callable[[list[float]], None] = lambda ratios: None
    on_step: Callable[[StepRecord, int], None] = lambda record, total: None
    should_stop: Callable[[], bool] = lambda: False
    on_checkpoint: Callable[[TrainingCheckpoint], None] = lambda checkpoint: None
    checkpoint_every: int = 0  # 0: never


@dataclass
class _Timings:
    seconds: dict[str, float] = field(default_factory=dict)

    def record(self, stage: Stage, started: float) -> None:
        self.seconds[stage.value] = round(time.perf_counter() - started, 3)


def validate_concepts(concepts: Sequence[ConceptSpec]) -> None:
    """The contract's rules for names (attencraft_contract.rules), raised as the core's error type."""
    try:
        names = rules.concept_names([c.name for c in concepts])
        for concept in concepts:
            rules.initializer_word(concept.initializer or "", "initializer")
    except InputError as error:
        raise InvalidInputError(str(error)) from error
    if names != [c.name for c in concepts]:
        raise InvalidInputError(f"Concept names must be lower-case plain words: {', '.join(names)}.")


def noisy_latents(
    model: BaseModel, latents: torch.Tensor, timesteps: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """z_t for each timestep: (T,) -> (T, 4, h, w), noise drawn from a seeded CPU generator."""
    batch = latents.expand(timesteps.shape[0], -1, -1, -1)
    noise = torch.randn(batch.shape, generator=generator).to(model.device)
    return noise_scheduler(model).add_noise(batch, noise, timesteps.to(model.device))


@torch.no_grad()
def record_attention(
    model: BaseModel,
    latents: torch.Tensor,
    timesteps: torch.Tensor,
    prompt_ids: torch.Tensor,
    count: int,
    generator: torch.Generator,
    *,
    with_self_attention: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One UNet forward on z_t for every t: (T, N, h', w') cross maps and, if asked, (T, H*W, H*W) self maps."""
    positions = token_positions(prompt_ids, model.slot_ids[:count]).to(model.device)
    noisy = noisy_latents(model, latents, timesteps, generator)
    text_states = model.encode_prompt_ids(prompt_ids).expand(timesteps.shape[0], -1, -1)
    recording = model.recorder.record(model.attention_grids, positions, with_self_attention=with_self_attention)
    with model.autocast(), recording:
        model.pipeline.unet(noisy, timesteps.to(model.device), encoder_hidden_states=text_states)
        cross = model.recorder.cross_maps().float()
        self_attention = model.recorder.self_attention().float() if with_self_attention else None
    return cross, self_attention


def create_masks(
    model: BaseModel, latents: torch.Tensor, prompt_ids: torch.Tensor, names: list[str], config: MaskConfig, seed: int
) -> tuple[torch.Tensor, AttentionHeatmaps]:
    """SPEC 2.3: bool (N, H, W) masks on the self-attention grid, from one no-grad forward at t ~ U[0, 300), and
    the attention maps they came from.

    Retries other timesteps when a concept is not localised, then fails naming the concept.
    """
    generator = torch.Generator().manual_seed(seed)
    best: torch.Tensor | None = None
    for _ in range(config.attempts):
        timestep = torch.randint(0, config.max_timestep, (1,), generator=generator)
        cross, self_attention = record_attention(
            model, latents, timestep, prompt_ids, len(names), generator, with_self_attention=True
        )
        heatmaps = attention_heatmaps(cross[0], self_attention[0], upsilon=config.upsilon, tau=config.tau)
        masks = winner_masks(heatmaps.after, config.gamma)
        if localized(masks, config):
            return masks.cpu(), AttentionHeatmaps(before=heatmaps.before.cpu(), after=heatmaps.after.cpu())
        if best is None or area_fractions(masks).min() > area_fractions(best).min():
            best = masks
    fractions = area_fractions(best)
    worst = int(fractions.argmin())
    raise ConceptNotLocalizedError(names[worst], float(fractions[worst]))


def estimate_scores(
    model: BaseModel,
    latents: torch.Tensor,
    prompt_ids: torch.Tensor,
    masks: torch.Tensor,
    config: RatioConfig,
    seed: int,
) -> torch.Tensor:
    """SPEC 2.4: S_i, one batched no-grad forward over T = {0, 20, 40, 60, 80}."""
    generator = torch.Generator().manual_seed(seed)
    timesteps = torch.tensor(config.timesteps)
    cross, _ = record_attention(
        model, latents, timesteps, prompt_ids, masks.shape[0], generator, with_self_attention=False
    )  # (T, N, h', w')
    small_masks = resize_masks(masks, tuple(cross.shape[-2:])).to(cross.device)
    return attention_scores(cross, small_masks, config.top_n).cpu()


def library_versions() -> dict[str, str]:
    return {name: importlib.metadata.version(name) for name in ("torch", "diffusers", "transformers", "safetensors")}


def learn_concepts(
    model: BaseModel,
    image: Image.Image,
    concepts: Sequence[ConceptSpec],
    config: TrainingConfig,
    *,
    user_masks: Sequence[Image.Image] | None = None,
    callbacks: LearnCallbacks | None = None,
    resume: TrainingCheckpoint | None = None,
    fit: ImageFit = ImageFit.CROP,
) -> ConceptSet:
    validate_concepts(concepts)
    if user_masks is not None and len(user_masks) != len(concepts):
        raise InvalidInputError(f"Give one mask per concept: {len(concepts)} concepts, {len(user_masks)} masks.")
    callbacks = callbacks or LearnCallbacks()
    names = [c.name for c in concepts]
    initializers = [c.initializer or c.name for c in concepts]
    count = len(concepts)
    timings = _Timings()
    prepared = prepare_image(image, model.resolution, fit)
    latents = model.encode_image(prepared)  # z, (1, 4, h, w), encoded once
    identifiers = torch.stack([model.initial_identifier(word) for word in initializers])  # (N, D)
    model.set_identifiers(identifiers)
    prompt_ids = model.prompt_ids(concept_prompt(model.slot_tokens, tuple(range(count))))

    try:
        started = time.perf_counter()
        callbacks.on_stage(Stage.MASKING)
        if user_masks is not None:
            masks = masks_from_images(list(user_masks), model.resolution, model.attention_grids.self_attention, fit)
            if not localized(masks, config.masks):
                fractions = area_fractions(masks)
                worst = int(fractions.argmin())
                raise ConceptNotLocalizedError(names[worst], float(fractions[worst]))
        else:
            masks, heatmaps = create_masks(
                model, latents, prompt_ids, names, config.masks, config.seed + MASK_SEED_OFFSET
            )
            before, after = (heatmap_images(maps, model.resolution) for maps in (heatmaps.before, heatmaps.after))
            callbacks.on_heatmaps(before, after)
        callbacks.on_masks(mask_images(masks, model.resolution))
        timings.record(Stage.MASKING, started)

        started = time.perf_counter()
        callbacks.on_stage(Stage.ESTIMATING)
        scores = estimate_scores(model, latents, prompt_ids, masks, config.ratios, config.seed + RATIO_SEED_OFFSET)
        ratios = sampling_ratios(scores)
        callbacks.on_ratios(ratios.tolist())
        timings.record(Stage.ESTIMATING, started)
    finally:
        model.clear_identifiers()

    started = time.perf_counter()
    callbacks.on_stage(Stage.TRAINING)
    trainer = FeatureRetainingTrainer(model, latents, masks, sampling_probabilities(scores), identifiers, config)
    try:
        if resume is not None:
            trainer.load_checkpoint(resume)
        while trainer.step_count < config.steps:
            if callbacks.should_stop():
                raise TrainingCanceled()
            record = trainer.step()
            callbacks.on_step(record, config.steps)
            every = callbacks.checkpoint_every
            if every and record.step % every == 0 and record.step < config.steps:
                callbacks.on_checkpoint(trainer.checkpoint())
        embeddings, deltas = trainer.learned()
        history = list(trainer.history)
    finally:
        trainer.close()
    timings.record(Stage.TRAINING, started)

    callbacks.on_stage(Stage.SAVING)
    hyperparameters = asdict(config)
    return ConceptSet(
        placeholders=[rules.placeholder_for(name) for name in names],
        class_names=names,
        initializers=initializers,
        token_strings=model.slot_tokens[:count],
        embeddings=embeddings,
        deltas=deltas,
        masks=masks,
        scores=scores.tolist(),
        ratios=ratios.tolist(),
        metadata={
            "base_model": {"name": model.name, "revision": model.revision, "fingerprint": model.fingerprint},
            "resolution": model.resolution,
            "seed": config.seed,
            "hyperparameters": hyperparameters,
            "mask_area_fractions": area_fractions(masks).tolist(),
            "masks_source": "uploaded" if user_masks is not None else "attention",
            "fit": fit.value,
            "stage_seconds": timings.seconds,
            "library_versions": library_versions(),
        },
        history=history,
        image=prepared,
    )
