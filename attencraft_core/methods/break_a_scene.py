"""Break-a-Scene (Avrahami et al., SIGGRAPH Asia 2023), as BASELINES §4 states it.

One handle token per concept, learned from one photo and a (loose) mask per concept in two stages: first only the
token embeddings at a high learning rate, then the embeddings and the model's weights at a low one, so the tokens
settle before the weights can over-fit (the recipe's stages; the AttenCraft paper's PEFT variant trains W_k, W_v
in stage 2 instead of the whole UNet and text encoder). Union sampling: each step draws k ~ U{1..N} and a random
k-subset in random order; the prompt is "a photo of V_a and V_b", no class word.
  L_rec  = mean over all elements of (M_s ⊙ ŷ − M_s ⊙ y)², M_s = max_{i∈s} M_i nearest-resized to the latent
           (not divided by the mask area, unlike AttenCraft's Eq. 7);
  L_attn = λ_attn · Σ_{i∈s} mean (M_i^16 − A_i / max A_i)² on the 16x16 grid, λ_attn = 0.01 (summed, not averaged);
  L = L_rec + λ_prior·L_prior + L_attn, in both stages.
Both resizes start from the mask at the finest resolution there is, as the code resizes the image-sized mask
(BASELINES §5.4): an upload at the model's resolution, else the 32x32 attention mask, nearest neighbour.
Class images default to the code's generic "a photo at the beach". Each step mirrors photo and masks together with
probability 0.5 (the recipe's hflip; the mirrored photo is encoded once too).
"""

import torch

from attencraft_contract.methods import Recipe
from attencraft_core.methods.attencraft import concept_prompt
from attencraft_core.methods.base import (
    Grid,
    LossTerms,
    MethodContext,
    StepInputs,
    TrainingMethod,
    both_orientations,
    nearest_masks,
    prior_loss,
)

CLASS_PROMPT = "a photo at the beach"  # train.py --class_prompt default


def union_sample(count: int, generator: torch.Generator) -> tuple[int, ...]:
    """k ~ U{1..N}, then a uniformly random k-subset in random order (random.sample)."""
    size = int(torch.randint(1, count + 1, (), generator=generator))
    return tuple(torch.randperm(count, generator=generator)[:size].tolist())


def masked_diffusion_loss(prediction: torch.Tensor, target: torch.Tensor, union: torch.Tensor) -> torch.Tensor:
    """mean over all elements of (M_s ⊙ ŷ − M_s ⊙ y)²; union: (h, w)."""
    return (prediction * union - target * union).pow(2).mean()


def attention_loss(maps: torch.Tensor, masks: torch.Tensor, weight: float) -> torch.Tensor:
    """λ_attn · Σ_i mean (M_i − A_i / max A_i)² over (K, h', w') maps and masks."""
    normalized = maps / maps.flatten(1).amax(dim=1)[:, None, None]
    return weight * (masks - normalized).pow(2).mean(dim=(1, 2)).sum()


class BreakAScene(TrainingMethod):
    def __init__(self, recipe: Recipe, context: MethodContext) -> None:
        super().__init__(recipe, context)
        masks = context.finest_masks
        self.latent_masks = both_orientations(masks, lambda m: nearest_masks(m, context.latent_size))  # (N, h, w)
        self.attention_masks = both_orientations(masks, lambda m: nearest_masks(m, context.cross_grid))  # (N, h', w')

    def draw_subset(self, generator: torch.Generator) -> tuple[int, ...]:
        return union_sample(self.count, generator)

    def prompt(self, subset: tuple[int, ...]) -> str:
        return concept_prompt(self.context.tokens, subset)

    def cross_grids(self) -> tuple[Grid, ...]:
        return (self.context.cross_grid,)

    def prior_prompts(self) -> list[str]:
        return [CLASS_PROMPT]

    def loss(self, step: StepInputs) -> LossTerms:
        index = list(step.subset)
        device = step.prediction.device
        union = self.latent_masks[step.flipped][index].amax(dim=0).to(device)
        reconstruction = masked_diffusion_loss(step.prediction, step.target, union)
        attention = attention_loss(
            step.maps[self.context.cross_grid],
            self.attention_masks[step.flipped][index].to(device),
            self.recipe.attention_weight,
        )
        total = reconstruction + prior_loss(step, self.recipe.prior_weight) + attention
        return LossTerms(total=total, reconstruction=reconstruction, attention=attention)
