"""One image and N >= 2 concept names in, a trained concept set out (SPEC 2.3-2.5, BASELINES §5-6).

AttenCraft: masks -> ratios -> training. The other methods: masks only where they need them (uploaded, else
AttenCraft's attention masks), class images where they preserve a prior, then the same training loop.
"""

import importlib.metadata
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum

import torch
from PIL import Image

from attencraft_contract import rules
from attencraft_contract.errors import InputError
from attencraft_contract.methods import METHODS_WITHOUT_MASKS, Method, Recipe, TokenInit, check_masks_allowed
from attencraft_contract.models import ImageFit
from attencraft_core.artifacts import ConceptSet
from attencraft_core.augmentation import TrainingPhoto
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
from attencraft_core.methods import create_method
from attencraft_core.methods.attencraft import concept_prompt
from attencraft_core.methods.base import MethodContext, token_positions
from attencraft_core.models import BaseModel, ConceptWeights
from attencraft_core.prior import MemoryPriorCache, PriorImageCache, class_latents
from attencraft_core.ratios import attention_scores, sampling_probabilities, sampling_ratios
from attencraft_core.tokens import RARE_WORDS
from attencraft_core.training import (
    PriorImages,
    StepRecord,
    Trainer,
    TrainingCheckpoint,
    noise_scheduler,
)

MASK_SEED_OFFSET = 0
RATIO_SEED_OFFSET = 1
PRIOR_SEED_OFFSET = 3
PRIOR_TIMING = "prior"  # stage_seconds' entry for the class images, generated (or read) in the training stage


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
    # The weights trained so far every `weights_every` steps before the last, ready for generation (learning curves;
    # the last step's are the returned concept set's); 0: never.
    on_weights: Callable[[int, ConceptWeights], None] = lambda step, weights: None
    weights_every: int = 0


@dataclass
class _Timings:
    seconds: dict[str, float] = field(default_factory=dict)

    def record(self, part: str, started: float) -> None:
        """Seconds since `started` under a stage's name, or "prior" for the class images (part of training)."""
        self.seconds[str(part)] = round(time.perf_counter() - started, 3)


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


def random_walk_steps(model: BaseModel, config: MaskConfig) -> int:
    """Eq. 3's τ for a run: the config's when it gives one, else the base model's."""
    return model.random_walk_steps if config.tau is None else config.tau


def create_masks(
    model: BaseModel, latents: torch.Tensor, prompt_ids: torch.Tensor, names: list[str], config: MaskConfig, seed: int
) -> tuple[torch.Tensor, AttentionHeatmaps]:
    """SPEC 2.3: bool (N, H, W) masks on the self-attention grid, from one no-grad forward at t ~ U[0, 300), and
    the attention maps they came from.

    Retries other timesteps when a concept is not localised, then fails naming the concept.
    """
    generator = torch.Generator().manual_seed(seed)
    walk_steps = random_walk_steps(model, config)
    best: torch.Tensor | None = None
    for _ in range(config.attempts):
        timestep = torch.randint(0, config.max_timestep, (1,), generator=generator)
        cross, self_attention = record_attention(
            model, latents, timestep, prompt_ids, len(names), generator, with_self_attention=True
        )
        heatmaps = attention_heatmaps(cross[0], self_attention[0], upsilon=config.upsilon, tau=walk_steps)
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


def initializer_words(concepts: Sequence[ConceptSpec], init: TokenInit) -> list[str]:
    """The word each identifier starts from: the concept's own initializer if given, else the recipe's rule."""
    words = []
    for index, concept in enumerate(concepts):
        if concept.initializer:
            words.append(concept.initializer)
        elif init == TokenInit.RARE:
            words.append(RARE_WORDS[index])
        elif init == TokenInit.SKS:
            words.append("sks")
        else:
            words.append(concept.name)
    return words


def prior_images(model: BaseModel, prompts: list[str], config: TrainingConfig, cache: PriorImageCache) -> PriorImages:
    """The class images of each prior prompt, from the cache or generated once by the base model."""
    count, seed, steps = config.recipe.prior_images, config.seed + PRIOR_SEED_OFFSET, config.prior_sampling_steps
    return PriorImages(
        latents=[class_latents(model, prompt, count, seed, steps, cache) for prompt in prompts],
        prompt_ids=[model.prompt_ids(prompt) for prompt in prompts],
    )


def concept_weights(
    model: BaseModel, names: list[str], recipe: Recipe, embeddings: torch.Tensor, deltas: dict
) -> ConceptWeights:
    return ConceptWeights(
        placeholders=[rules.placeholder_for(name) for name in names],
        embeddings=embeddings,
        deltas=deltas,
        base_fingerprint=model.fingerprint,
        base_model=model.name,
        class_names=names,
        prompt_expansion=recipe.prompt_expansion,
    )


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
    prior_cache: PriorImageCache | None = None,
) -> ConceptSet:
    """Learn the concepts of one photo with the recipe's method. `prior_cache` keeps class images across runs
    (default: this call only)."""
    validate_concepts(concepts)
    if user_masks is not None and len(user_masks) != len(concepts):
        raise InvalidInputError(f"Give one mask per concept: {len(concepts)} concepts, {len(user_masks)} masks.")
    callbacks = callbacks or LearnCallbacks()
    recipe = config.recipe
    is_attencraft = recipe.method == Method.ATTENCRAFT
    needs_masks = recipe.method not in METHODS_WITHOUT_MASKS
    try:
        check_masks_allowed(recipe.method, len(user_masks or []))
    except InputError as error:
        raise InvalidInputError(str(error)) from error
    names = [c.name for c in concepts]
    initializers = [c.initializer or c.name for c in concepts]
    count = len(concepts)
    timings = _Timings()
    prepared = prepare_image(image, model.resolution, fit)
    latents = model.encode_image(prepared)  # z, (1, 4, h, w), encoded once
    class_identifiers = torch.stack([model.initial_identifier(word) for word in initializers])  # (N, D)
    model.set_identifiers(class_identifiers)
    prompt_ids = model.prompt_ids(concept_prompt(model.slot_tokens, tuple(range(count))))

    masks: torch.Tensor | None = None
    full_masks: torch.Tensor | None = None  # uploads at the model's resolution, for TL and BAS (BASELINES §5.4)
    scores = ratios = probabilities = None
    try:
        if needs_masks:
            started = time.perf_counter()
            callbacks.on_stage(Stage.MASKING)
            if user_masks is not None:
                grid = model.attention_grids.self_attention
                masks = masks_from_images(list(user_masks), model.resolution, grid, fit)
                full = (model.resolution, model.resolution)
                full_masks = masks_from_images(list(user_masks), model.resolution, full, fit)
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

        if is_attencraft:
            started = time.perf_counter()
            callbacks.on_stage(Stage.ESTIMATING)
            seed = config.seed + RATIO_SEED_OFFSET
            scores = estimate_scores(model, latents, prompt_ids, masks, config.ratios, seed)
            ratios = sampling_ratios(scores, recipe.ratios)
            probabilities = sampling_probabilities(ratios)
            callbacks.on_ratios(ratios.tolist())
            timings.record(Stage.ESTIMATING, started)
    finally:
        model.clear_identifiers()

    callbacks.on_stage(Stage.TRAINING)
    context = MethodContext(
        class_names=names,
        tokens=model.slot_tokens[:count],
        token_ids=model.slot_ids[:count],
        latent_size=model.latent_size,
        cross_grid=model.attention_grids.cross,
        masks=masks,
        full_masks=full_masks,
    )
    method = create_method(recipe, context, probabilities)
    prior = None
    if recipe.prior_preservation:
        started = time.perf_counter()
        cache = prior_cache or MemoryPriorCache()
        prior = prior_images(model, method.prior_prompts(), config, cache)
        timings.record(PRIOR_TIMING, started)
    started = time.perf_counter()
    words = initializer_words(concepts, recipe.token_init)
    first_subtoken = recipe.token_init == TokenInit.FIRST_SUBTOKEN
    identifiers = torch.stack([model.initial_identifier(word, first_subtoken=first_subtoken) for word in words])
    trainer = Trainer(model, method, TrainingPhoto(model, prepared, latents, recipe), identifiers, config, prior)
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
            if callbacks.weights_every and record.step % callbacks.weights_every == 0 and record.step < config.steps:
                callbacks.on_weights(record.step, concept_weights(model, names, recipe, *trainer.learned()))
        embeddings, deltas = trainer.learned()
        history = list(trainer.history)
    finally:
        trainer.close()
    timings.record(Stage.TRAINING, started)

    callbacks.on_stage(Stage.SAVING)
    hyperparameters = asdict(config)
    hyperparameters["recipe"] = recipe.as_dict()
    return ConceptSet(
        placeholders=[rules.placeholder_for(name) for name in names],
        class_names=names,
        initializers=words,
        token_strings=model.slot_tokens[:count],
        embeddings=embeddings,
        deltas=deltas,
        masks=masks,
        scores=scores.tolist() if scores is not None else [],
        ratios=ratios.tolist() if ratios is not None else [],
        metadata={
            "base_model": {"name": model.name, "revision": model.revision, "fingerprint": model.fingerprint},
            "resolution": model.resolution,
            "seed": config.seed,
            "method": recipe.method.value,
            "prompt_expansion": recipe.prompt_expansion.value,
            "hyperparameters": hyperparameters,
            "mask_area_fractions": area_fractions(masks).tolist() if masks is not None else [],
            "masks_source": ("uploaded" if user_masks is not None else "attention") if masks is not None else "none",
            "prior": {"source": "generated", "prompts": method.prior_prompts()} if prior is not None else None,
            "fit": fit.value,
            "stage_seconds": timings.seconds,
            "library_versions": library_versions(),
        },
        history=history,
        image=prepared,
    )
