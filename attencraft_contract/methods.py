"""The training methods a job may choose, their two presets and AttenCraft's ablation switches, as one frozen recipe.

Every number comes from ../shared/BASELINES.md (which cites the papers and the official code); the `Use` line of
that file is what a preset follows. ``build_recipe`` is the one place that turns a user's choice (CLI flags, the
API's job options, the Python client) into the hyper-parameters a training run uses, or one InputError sentence.
"""

import enum
from dataclasses import asdict, dataclass, replace
from typing import Any

from attencraft_contract.errors import InputError
from attencraft_contract.limits import MAX_PRIOR_IMAGES, MAX_STEPS


class Method(enum.StrEnum):
    ATTENCRAFT = "attencraft"
    CUSTOM_DIFFUSION = "custom_diffusion"
    DISENDIFF = "disendiff"
    TEXTUAL_LOCALIZATION_HARD = "textual_localization_hard"
    TEXTUAL_LOCALIZATION_SOFT = "textual_localization_soft"
    BREAK_A_SCENE = "break_a_scene"


class Preset(enum.StrEnum):
    ATTENCRAFT_COMPARISON = "attencraft_comparison"  # the settings the AttenCraft paper ran each method with
    OFFICIAL = "official"  # the settings of the method authors' own code


class Ratios(enum.StrEnum):
    """AttenCraft's single-concept sampling ratios (paper Sec. IV-D, Table II)."""

    ADAPTIVE = "adaptive"  # Eq. 6: r_i = 1 − softmax(S̄)_i
    EQUAL = "equal"  # r_i = 1/N whatever the attention scores
    NO_SOFTMAX = "no_softmax"  # Eq. 6 without the Softmax: r_i = 1 − S̄_i


class MultiConceptLoss(enum.StrEnum):
    """What a multi-concept step (|s| > 1) back-propagates (paper Eq. 9, Fig. 9-10)."""

    ATTENTION = "attention"  # Eq. 9: L_attn alone
    ATTENTION_AND_RECONSTRUCTION = "attention_and_reconstruction"  # L_rec + α·L_attn, as a single-concept step


class TokenInit(enum.StrEnum):
    """Where each identifier vector starts (BASELINES §6.2.8)."""

    CLASS = "class"  # the class name's embedding, mean over its sub-tokens (AttenCraft, SPEC 2.1)
    RARE = "rare"  # a rare word's embedding: "ktn", "pll", "ucd", ... (Custom Diffusion, DisenDiff)
    SKS = "sks"  # "sks" for every identifier (Textual Localization's code)
    FIRST_SUBTOKEN = "first_subtoken"  # the class name's first sub-token (Break-a-Scene's code)


class PromptExpansion(enum.StrEnum):
    """How a placeholder of a generation prompt becomes model text, the way the method trained."""

    TOKEN = "token"  # "<cat>" -> "V_1"
    TOKEN_AND_CLASS = "token+class"  # "<cat>" -> "V_1 cat"


ABLATION_SWITCHES = ("ratios", "multi_concept_loss", "omega")
# Methods that read no masks (the others take uploaded masks, else AttenCraft's attention masks: BASELINES §5).
METHODS_WITHOUT_MASKS = frozenset({Method.CUSTOM_DIFFUSION, Method.DISENDIFF})


def check_masks_allowed(method: Method, mask_count: int) -> None:
    """Uploaded masks with a method that reads none would be silently ignored: refuse them."""
    if mask_count and method in METHODS_WITHOUT_MASKS:
        raise InputError(
            f"Method {method.value} uses no masks; leave them out or choose a method that reads them "
            f"({', '.join(m.value for m in Method if m not in METHODS_WITHOUT_MASKS)}).",
            code="masks_not_used",
            field="masks",
        )


DEFAULT_OMEGA = 0.3  # paper Sec. IV-A


class StageName(enum.StrEnum):
    """What a stage trains, as progress reports name it."""

    IDENTIFIERS = "identifiers"  # the identifier vectors alone (Break-a-Scene's first stage)
    IDENTIFIERS_AND_KV = "identifiers+kv"  # the identifier vectors and W_k, W_v of every cross-attention layer


@dataclass(frozen=True)
class StageRecipe:
    """One stage of training: identifiers always train; K/V of every cross-attention layer only if `trains_kv`."""

    steps: int
    learning_rate: float
    trains_kv: bool

    @property
    def name(self) -> StageName:
        return StageName.IDENTIFIERS_AND_KV if self.trains_kv else StageName.IDENTIFIERS


@dataclass(frozen=True)
class Recipe:
    """Everything a training run of one method needs besides the photo, its concepts and the seed."""

    method: Method
    preset: Preset
    stages: tuple[StageRecipe, ...]
    token_init: TokenInit
    prompt_expansion: PromptExpansion
    attention_weight: float  # AttenCraft α (Eq. 9), DisenDiff IoU_alpha, TL δ, Break-a-Scene λ_attn
    prior_preservation: bool
    prior_images: int  # class images generated per prior prompt
    prior_weight: float  # λ_prior
    # No gradient into W_k, W_v through the start-of-text position (Custom Diffusion's code and the codes built on it,
    # BASELINES §1.2); forward values are unchanged.
    detach_sot_kv: bool
    hflip: bool  # each step mirrors the photo (and its masks) with probability 0.5
    resize_augmentation: bool  # Custom Diffusion's random shrink-and-paste / enlarge-and-crop of the photo
    ratios: Ratios = Ratios.ADAPTIVE
    multi_concept_loss: MultiConceptLoss = MultiConceptLoss.ATTENTION
    omega: float = DEFAULT_OMEGA  # probability of a multi-concept step (AttenCraft only)

    @property
    def steps(self) -> int:
        return sum(stage.steps for stage in self.stages)

    def stage_at(self, step: int) -> int:
        """Index of the stage that step `step` (0-based) belongs to."""
        boundary = 0
        for index, stage in enumerate(self.stages):
            boundary += stage.steps
            if step < boundary:
                return index
        return len(self.stages) - 1

    def stage_progress(self, step: int) -> dict[str, Any]:
        """The stage of step `step` (1-based, as progress counts), for progress reports:
        {"name": "identifiers", "number": 1, "count": 2}."""
        index = self.stage_at(step - 1)
        return {"name": self.stages[index].name.value, "number": index + 1, "count": len(self.stages)}

    def as_dict(self) -> dict[str, Any]:
        """The effective hyper-parameters, JSON-ready (job resource, artifact metadata)."""
        values = asdict(self)
        values["steps"] = self.steps
        for stage, shown in zip(self.stages, values["stages"], strict=True):
            shown["name"] = stage.name.value
        if self.method != Method.ATTENCRAFT:
            for switch in ABLATION_SWITCHES:
                del values[switch]
        return values


def _single_stage(steps: int, learning_rate: float) -> tuple[StageRecipe, ...]:
    return (StageRecipe(steps=steps, learning_rate=learning_rate, trains_kv=True),)


def _attencraft(preset: Preset) -> Recipe:
    """Paper Sec. IV-A: 300 steps, lr 1e-4, α = 0.01, ω = 0.3, identifiers from the class name. The official code
    (train.sh) runs the same numbers, so both presets agree."""
    return Recipe(
        method=Method.ATTENCRAFT,
        preset=preset,
        stages=_single_stage(300, 1e-4),
        token_init=TokenInit.CLASS,
        prompt_expansion=PromptExpansion.TOKEN,
        attention_weight=0.01,
        prior_preservation=False,
        prior_images=100,
        prior_weight=1.0,
        detach_sot_kv=False,  # not among the codes BASELINES §1.2 names as inheriting it
        hflip=False,  # the paper and train.sh flip nothing
        resize_augmentation=False,
    )


def _custom_diffusion(preset: Preset) -> Recipe:
    """BASELINES §1: [AC] 200 steps at lr 5e-5; official diffusers README 500 steps (multi-concept) at
    1e-5 × batch 2 × 2 (scale_lr with prior) = 4e-5. Prior preservation on, 200 images, weight 1. <sot> K/V detached
    in both (both official codes do it). `official` flips (the README's `--hflip`) and resize-augments (the code's
    default, no `--noaug` in the README); [AC] states no augmentation, and BASELINES §1.3 says `augment=False` by
    default: `attencraft_comparison` does neither."""
    comparison = preset == Preset.ATTENCRAFT_COMPARISON
    return Recipe(
        method=Method.CUSTOM_DIFFUSION,
        preset=preset,
        stages=_single_stage(200, 5e-5) if comparison else _single_stage(500, 4e-5),
        token_init=TokenInit.RARE,
        prompt_expansion=PromptExpansion.TOKEN_AND_CLASS,
        attention_weight=0.0,
        prior_preservation=True,
        prior_images=200,
        prior_weight=1.0,
        detach_sot_kv=True,
        hflip=not comparison,
        resize_augmentation=not comparison,
    )


def _disendiff(preset: Preset) -> Recipe:
    """BASELINES §2: 250 steps either way; lr 5e-5 in [AC], 8e-5 (1e-5 × accumulate 4 × batch 2) in the code.
    Calibration weight 0.01 (code `IoU_alpha`; the paper's Eq. 6 has no weight: we follow the code). <sot> K/V
    detached (inherited from Custom Diffusion's code, BASELINES §1.2). `official` flips with p 0.5 and
    resize-augments (`MaskBase` defaults `aug=True`, `flip_p=0.5`, `src/finetune_data.py`, BASELINES §2.3); [AC]
    states neither, so `attencraft_comparison` does neither."""
    comparison = preset == Preset.ATTENCRAFT_COMPARISON
    return Recipe(
        method=Method.DISENDIFF,
        preset=preset,
        stages=_single_stage(250, 5e-5 if comparison else 8e-5),
        token_init=TokenInit.RARE,
        prompt_expansion=PromptExpansion.TOKEN_AND_CLASS,
        attention_weight=0.01,
        prior_preservation=True,
        prior_images=200,
        prior_weight=1.0,
        detach_sot_kv=True,
        hflip=not comparison,
        resize_augmentation=not comparison,
    )


def _textual_localization(method: Method, preset: Preset) -> Recipe:
    """BASELINES §3: [AC] did not run TL; `attencraft_comparison` puts it on the others' footing (300 steps,
    lr 5e-5), `official` follows the scripts (800 steps, 1e-5 × 3 × 2 = 6e-5). δ = λ = 1; "sks" init in both
    (the method's own init; [AC] states none for TL). <sot> K/V detached (its custom-diffusion attention processors,
    BASELINES §1.2); no flip and no augmentation (`--noaug`, the flip transform commented out: BASELINES §3.3)."""
    comparison = preset == Preset.ATTENCRAFT_COMPARISON
    return Recipe(
        method=method,
        preset=preset,
        stages=_single_stage(300, 5e-5) if comparison else _single_stage(800, 6e-5),
        token_init=TokenInit.SKS,
        prompt_expansion=PromptExpansion.TOKEN_AND_CLASS,
        attention_weight=1.0,
        prior_preservation=True,
        prior_images=200,
        prior_weight=1.0,
        detach_sot_kv=True,
        hflip=False,
        resize_augmentation=False,
    )


def _break_a_scene(preset: Preset) -> Recipe:
    """BASELINES §4: [AC] ran 400 steps of embeddings at 5e-4, then 200 of embeddings + K/V at 5e-5 (the PEFT
    variant); the official code runs 400 + 400 at 5e-4 then 2e-6. Its phase 2 trains the whole UNet and text
    encoder: we train embeddings + K/V in both presets so the artifact stays complete (recorded as the recipe).
    Photo and masks mirrored together with probability 0.5 in both presets (`train.py`'s dataset, BASELINES §4.3;
    [AC] ran the official BAS data pipeline). <sot> K/V not detached: BASELINES §1.2 names only CD, DisenDiff and
    TL; [AC]'s variant borrows TL's PEFT code, which may detach it, but [AC] does not say so."""
    comparison = preset == Preset.ATTENCRAFT_COMPARISON
    second = StageRecipe(steps=200, learning_rate=5e-5, trains_kv=True)
    if not comparison:
        second = StageRecipe(steps=400, learning_rate=2e-6, trains_kv=True)
    return Recipe(
        method=Method.BREAK_A_SCENE,
        preset=preset,
        stages=(StageRecipe(steps=400, learning_rate=5e-4, trains_kv=False), second),
        token_init=TokenInit.CLASS if comparison else TokenInit.FIRST_SUBTOKEN,
        prompt_expansion=PromptExpansion.TOKEN,
        attention_weight=0.01,
        prior_preservation=True,
        prior_images=100,
        prior_weight=1.0,
        detach_sot_kv=False,
        hflip=True,
        resize_augmentation=False,  # train.py resizes and center-crops only
    )


def _choice(enum_type: type[enum.StrEnum], raw: str, field: str) -> Any:
    try:
        return enum_type(raw)
    except ValueError:
        valid = ", ".join(member.value for member in enum_type)
        raise InputError(
            f"Unknown {field} {raw!r}; choose one of {valid}.", code=f"invalid_{field}", field=field
        ) from None


def _rescaled(stages: tuple[StageRecipe, ...], steps: int) -> tuple[StageRecipe, ...]:
    """The stages' preset proportions kept for a new total (each stage at least one step)."""
    if not len(stages) <= steps <= MAX_STEPS:
        raise InputError(
            f"steps must lie between {len(stages)} and {MAX_STEPS} for this method ({len(stages)} stages); "
            f"got {steps}.",
            code="invalid_steps",
            field="steps",
        )
    total = sum(stage.steps for stage in stages)
    counts = [max(1, round(stage.steps * steps / total)) for stage in stages[:-1]]
    counts.append(steps - sum(counts))
    return tuple(replace(stage, steps=count) for stage, count in zip(stages, counts, strict=True))


def build_recipe(
    method: str = Method.ATTENCRAFT,
    preset: str = Preset.ATTENCRAFT_COMPARISON,
    *,
    steps: int | None = None,
    prior_preservation: bool | None = None,
    prior_images: int | None = None,
    ratios: str | None = None,
    multi_concept_loss: str | None = None,
    omega: float | None = None,
) -> Recipe:
    """The recipe of `method` under `preset`, with the given overrides; None keeps the preset's value.

    Ablation switches (ratios, multi_concept_loss, omega) belong to AttenCraft; with another method they are an
    InputError, so an ablation can never silently do nothing.
    """
    chosen = _choice(Method, method, "method")
    recipe_preset = _choice(Preset, preset, "preset")
    switches = {"ratios": ratios, "multi_concept_loss": multi_concept_loss, "omega": omega}
    given = [name for name, value in switches.items() if value is not None]
    if given and chosen != Method.ATTENCRAFT:
        raise InputError(
            f"{', '.join(given)} {'is an ablation' if len(given) == 1 else 'are ablations'} of AttenCraft and only "
            f"valid with method attencraft, not {chosen.value}.",
            code="ablation_needs_attencraft",
            field=given[0],
        )
    if chosen == Method.ATTENCRAFT:
        recipe = _attencraft(recipe_preset)
    elif chosen == Method.CUSTOM_DIFFUSION:
        recipe = _custom_diffusion(recipe_preset)
    elif chosen == Method.DISENDIFF:
        recipe = _disendiff(recipe_preset)
    elif chosen == Method.BREAK_A_SCENE:
        recipe = _break_a_scene(recipe_preset)
    else:
        recipe = _textual_localization(chosen, recipe_preset)

    changes: dict[str, Any] = {}
    if steps is not None:
        changes["stages"] = _rescaled(recipe.stages, steps)
    if prior_preservation is not None:
        changes["prior_preservation"] = prior_preservation
    if prior_images is not None:
        if not 1 <= prior_images <= MAX_PRIOR_IMAGES:
            raise InputError(
                f"prior_images must lie between 1 and {MAX_PRIOR_IMAGES}; got {prior_images}.",
                code="invalid_prior_images",
                field="prior_images",
            )
        changes["prior_images"] = prior_images
    if ratios is not None:
        changes["ratios"] = _choice(Ratios, ratios, "ratios")
    if multi_concept_loss is not None:
        changes["multi_concept_loss"] = _choice(MultiConceptLoss, multi_concept_loss, "multi_concept_loss")
    if omega is not None:
        if not 0.0 <= omega <= 1.0:
            raise InputError(f"omega must lie between 0 and 1; got {omega}.", code="invalid_omega", field="omega")
        changes["omega"] = float(omega)
    return replace(recipe, **changes)
