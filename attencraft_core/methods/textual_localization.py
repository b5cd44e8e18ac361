"""Textual Localization (Sec. 3.2-3.3, Eq. 6-9 of its paper), hard and soft guidance, as BASELINES §3 states it.

Custom Diffusion (K/V + identifier tokens, "photo of a V1 c1 and a V2 c2" every step, per-concept class images)
plus an explicit cross-attention guidance from a segmentation map S_i per concept. The identifier's attention map is
averaged over the UNet resolutions latent/8, /4 and /2 (8, 16, 32 at 512 px; those the UNet has), each up-sampled
bilinearly to 256x256 and min-max normalised:
  A_V = mean_r minmax(up(A_r(V))),
  hard (Eq. 7): L^i = mean (A_{V_i} − S_i)²,   soft (Eq. 8-9): L^i = mean [(A_{V_i} − S_i)² · 1(S_i = 0)],
  L_attn = (1/N) Σ_i L^i,   L = L_rec + λ·L_prior + δ·L_attn with λ = δ = 1.
Soft guidance only suppresses attention outside the object; its mean runs over all pixels, as the code's does.
S_i comes from the mask at the finest resolution there is (an upload at the model's resolution, else the 32x32
attention mask), resized bilinearly to 256x256 and thresholded at 0.5: BASELINES §5.4. The code resizes its grey
segmentation PNG bilinearly and keeps the soft edge values; we follow BASELINES, whose masks are binary, so a
binary S_i keeps soft guidance's "S_i = 0" region the complement of the mask.
Token positions come from the tokenised prompt (the code hard-codes 4 and 8); every identifier trains (the code's
gradient mask freezes the last one: BASELINES §3.2).
"""

import torch
import torch.nn.functional as F

from attencraft_contract.methods import Method, Recipe
from attencraft_core.methods.base import (
    Grid,
    LossTerms,
    MethodContext,
    StepInputs,
    TrainingMethod,
    bilinear_masks,
    both_orientations,
    prior_loss,
    reconstruction_loss,
)
from attencraft_core.methods.custom_diffusion import modifier_prompt

TARGET_SIZE = (256, 256)


def localization_map(maps_per_grid: list[torch.Tensor]) -> torch.Tensor:
    """A_V: (K, 256, 256) from a list of (K, h_r, w_r) maps, one per resolution."""
    normalized = []
    for maps in maps_per_grid:
        upsampled = F.interpolate(maps[None], size=TARGET_SIZE, mode="bilinear", align_corners=False)[0]
        flat = upsampled.flatten(1)
        low = flat.min(dim=1, keepdim=True).values
        high = flat.max(dim=1, keepdim=True).values
        normalized.append(((flat - low) / (high - low + 1e-8)).view_as(upsampled))
    return torch.stack(normalized).mean(dim=0)


def localization_loss(attention: torch.Tensor, targets: torch.Tensor, *, soft: bool) -> torch.Tensor:
    """L_attn of (K, 256, 256) maps A_V against (K, 256, 256) segmentation maps S in [0, 1]."""
    squared_error = (attention - targets).pow(2)
    if soft:
        squared_error = squared_error * (targets == 0)
    return squared_error.mean(dim=(1, 2)).mean()


class TextualLocalization(TrainingMethod):
    def __init__(self, recipe: Recipe, context: MethodContext) -> None:
        super().__init__(recipe, context)
        self.soft = recipe.method == Method.TEXTUAL_LOCALIZATION_SOFT
        self.targets = both_orientations(context.finest_masks, lambda m: bilinear_masks(m, TARGET_SIZE))  # S_i

    def draw_subset(self, generator: torch.Generator) -> tuple[int, ...]:
        return tuple(range(self.count))  # every step: both concepts

    def prompt(self, subset: tuple[int, ...]) -> str:
        return modifier_prompt(self.context.tokens, self.context.class_names, " and a ")

    def cross_grids(self) -> tuple[Grid, ...]:
        height, width = self.context.cross_grid
        return ((height // 2, width // 2), (height, width), (height * 2, width * 2))

    def prior_draws(self, step: int, prompt_count: int, image_count: int) -> list[tuple[int, int]]:
        """One class image of every concept in each step (the batch is [instance, class 1, class 2, ...])."""
        return [(prompt, step % image_count) for prompt in range(prompt_count)]

    def loss(self, step: StepInputs) -> LossTerms:
        attention = localization_map(list(step.maps.values()))
        targets = self.targets[step.flipped].to(attention.device)  # (N, 256, 256)
        guidance = localization_loss(attention, targets, soft=self.soft)
        reconstruction = reconstruction_loss(step)
        total = reconstruction + prior_loss(step, self.recipe.prior_weight) + self.recipe.attention_weight * guidance
        return LossTerms(total=total, reconstruction=reconstruction, attention=guidance)
