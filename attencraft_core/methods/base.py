"""What the one training loop asks of a method (BASELINES §6.3).

A method says which concepts a step trains on and with which prompt, which prompt positions and attention grids
it records, which class prompts its prior preservation uses, and its loss. Trainable parameters and learning rates
come from the recipe's stages; the loop (attencraft_core.training) does everything else the same way for all.
"""

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from attencraft_contract.methods import METHODS_WITHOUT_MASKS, Recipe

Grid = tuple[int, int]


@dataclass(frozen=True)
class MethodContext:
    """The concepts and the model facts a method works with."""

    class_names: list[str]
    tokens: list[str]  # identifier token strings V_1..V_N, as written in prompts
    token_ids: list[int]  # their tokenizer ids
    latent_size: Grid  # (h, w) of the latent z
    cross_grid: Grid  # the model's cross-attention grid (SD: latent / 4)
    masks: torch.Tensor | None  # bool (N, H, W) masks on the self-attention grid (uploaded or attention-derived)
    # The uploaded masks at the model's resolution (BASELINES §5.4); None where the masks exist only on the grid.
    full_masks: torch.Tensor | None = None

    @property
    def finest_masks(self) -> torch.Tensor | None:
        """The masks at the finest resolution there is: uploads at the model's resolution, else the grid's."""
        return self.full_masks if self.full_masks is not None else self.masks


@dataclass(frozen=True)
class StepInputs:
    """One step's UNet output, split into the instance item and the prior-preservation items."""

    subset: tuple[int, ...]
    flipped: bool  # the step trained on the mirrored photo: masks are read mirrored too
    # (h, w) M_valid, where a resize-augmented latent shows the photo (Custom Diffusion's lineage); None: everywhere
    valid: torch.Tensor | None
    prediction: torch.Tensor  # (1, C, h, w) ŷ for the photo
    target: torch.Tensor  # (1, C, h, w) y = ε (or v)
    prior_prediction: torch.Tensor | None  # (P, C, h, w) for the class images, None without prior preservation
    prior_target: torch.Tensor | None
    maps: dict[Grid, torch.Tensor]  # grid -> (K, h', w') cross-attention of the recorded positions, instance item


@dataclass(frozen=True)
class LossTerms:
    total: torch.Tensor
    reconstruction: torch.Tensor
    attention: torch.Tensor


def token_positions(input_ids: torch.Tensor, token_ids: list[int]) -> torch.Tensor:
    """(K,) positions of the given token ids in a (1, L) prompt, in the order given."""
    row = input_ids[0]
    return torch.stack([(row == token_id).nonzero()[0, 0] for token_id in token_ids])


def mean_squared_error(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (prediction - target).pow(2).mean()


def reconstruction_loss(step: StepInputs) -> torch.Tensor:
    """L_rec = Σ M_valid·(ŷ − y)² / Σ M_valid over (c, h, w) (BASELINES §1.4); the plain mean without a validity
    mask."""
    if step.valid is None:
        return mean_squared_error(step.prediction, step.target)
    valid = step.valid.expand_as(step.prediction)
    return ((step.prediction - step.target).pow(2) * valid).sum() / valid.sum()


def prior_loss(step: StepInputs, weight: float) -> torch.Tensor:
    """λ_prior · mean (ŷ_pr − y_pr)² over the class items (0 without prior preservation)."""
    if step.prior_prediction is None:
        return step.prediction.new_zeros(())
    return weight * mean_squared_error(step.prior_prediction, step.prior_target)


def nearest_masks(masks: torch.Tensor, size: Grid) -> torch.Tensor:
    """bool (N, H, W) -> float (N, h, w) by nearest neighbour (F.interpolate's default, as BAS resizes)."""
    return F.interpolate(masks.float()[None], size=size, mode="nearest")[0]


def both_orientations(masks: torch.Tensor, derive: Callable[[torch.Tensor], torch.Tensor]) -> dict[bool, torch.Tensor]:
    """{flipped: derive(masks as the step sees them)}: a step on the mirrored photo reads the masks mirrored
    before any resize, as Break-a-Scene flips image and masks together (BASELINES §4.3)."""
    return {False: derive(masks), True: derive(masks.flip(-1))}


def bilinear_masks(masks: torch.Tensor, size: Grid) -> torch.Tensor:
    """bool (N, H, W) -> float (N, h, w) in {0, 1}: bilinear resize, then > 0.5 (BASELINES §5.4, TL's targets)."""
    resized = F.interpolate(masks.float()[None], size=size, mode="bilinear", align_corners=False)[0]
    return (resized > 0.5).float()


class TrainingMethod(ABC):
    """A training method: one object per run, built from its recipe and the run's concepts."""

    def __init__(self, recipe: Recipe, context: MethodContext) -> None:
        if recipe.method not in METHODS_WITHOUT_MASKS and context.masks is None:
            raise ValueError(f"{recipe.method} needs a mask per concept")
        self.recipe = recipe
        self.context = context

    @property
    def count(self) -> int:
        return len(self.context.class_names)

    @abstractmethod
    def draw_subset(self, generator: torch.Generator) -> tuple[int, ...]:
        """The concepts this step trains on."""

    @abstractmethod
    def prompt(self, subset: tuple[int, ...]) -> str:
        """The training prompt of a subset."""

    def cross_grids(self) -> tuple[Grid, ...]:
        """The grids whose cross-attention the loss reads; empty: nothing is recorded, SDPA everywhere."""
        return ()

    def recorded_positions(self, input_ids: torch.Tensor, subset: tuple[int, ...]) -> torch.Tensor:
        """(K,) prompt positions whose attention columns are recorded: the subset's identifiers."""
        return token_positions(input_ids, [self.context.token_ids[i] for i in subset])

    def prior_prompts(self) -> list[str]:
        """The class prompts whose generated images regularise training (default: each class name)."""
        return list(self.context.class_names)

    def prior_draws(self, step: int, prompt_count: int, image_count: int) -> list[tuple[int, int]]:
        """(prompt index, image index) of the class items in step `step`: one per step, cycling through the
        prompts and their images the way the official datasets index them (image `step mod count`)."""
        return [(step % prompt_count, (step // prompt_count) % image_count)]

    @abstractmethod
    def loss(self, step: StepInputs) -> LossTerms:
        """The step's loss, with its reconstruction and attention terms for the record."""
