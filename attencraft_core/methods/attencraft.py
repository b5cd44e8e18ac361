"""AttenCraft's feature-retaining training, paper Sec. III-D, Eq. 7-9 (SPEC 2.5).

Each step draws a concept subset s: with probability ω a multi-concept subset (a uniform size in [2, N], then a
uniform subset of that size), otherwise one concept i with probability p_i from the adaptive sampling ratios
(Eq. 6). The prompt is "a photo of V_a and V_b". A single-concept step minimises L_rec + α·L_attn; a
multi-concept step minimises L_attn alone, so the reconstruction loss of a composed prompt never fuses the
concepts' features. Prior preservation (off by default) adds λ_prior·L_prior. The ablation
`multi_concept_loss=attention_and_reconstruction` back-propagates L_rec + α·L_attn in multi-concept steps too.
"""

import torch

from attencraft_contract.methods import MultiConceptLoss, Recipe
from attencraft_core.masks import resize_masks
from attencraft_core.methods.base import (
    Grid,
    LossTerms,
    MethodContext,
    StepInputs,
    TrainingMethod,
    both_orientations,
    prior_loss,
)


def concept_prompt(tokens: list[str], subset: tuple[int, ...]) -> str:
    """SPEC 2.1: "a photo of V_i and V_j ..." for the concepts of the subset."""
    return "a photo of " + " and ".join(tokens[i] for i in subset)


def draw_subset(probabilities: torch.Tensor, omega: float, generator: torch.Generator) -> tuple[int, ...]:
    """With probability ω a multi-concept subset (uniform size in [2, N], then a uniform subset of that size),
    otherwise one concept i drawn with probability p_i."""
    count = probabilities.shape[0]
    if torch.rand((), generator=generator).item() < omega:
        size = int(torch.randint(2, count + 1, (), generator=generator))
        return tuple(sorted(torch.randperm(count, generator=generator)[:size].tolist()))
    return (int(torch.multinomial(probabilities, 1, generator=generator)),)


def feature_retaining_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    cross_maps: torch.Tensor,
    latent_masks: torch.Tensor,
    attention_masks: torch.Tensor,
    alpha: float,
    multi_concept_loss: MultiConceptLoss = MultiConceptLoss.ATTENTION,
) -> LossTerms:
    """Eq. 7-9 for one step on the concept subset s (K = |s|).

    prediction, target: (B, C, h, w); cross_maps: (K, h', w') attention of the subset's tokens;
    latent_masks: (K, h, w) and attention_masks: (K, h', w') float masks of the subset's concepts.
    """
    union = latent_masks.amax(dim=0)  # M_s, (h, w)
    squared_error = (prediction - target).pow(2) * union  # (B, C, h, w)
    masked_elements = union.sum() * prediction.shape[0] * prediction.shape[1]
    reconstruction = squared_error.sum() / masked_elements.clamp_min(1.0)  # Eq. 7
    attention = (cross_maps - attention_masks).pow(2).mean(dim=(1, 2)).mean()  # Eq. 8
    if cross_maps.shape[0] == 1 or multi_concept_loss == MultiConceptLoss.ATTENTION_AND_RECONSTRUCTION:
        total = reconstruction + alpha * attention  # Eq. 9, |s| = 1
    else:
        total = attention  # Eq. 9, |s| > 1: L_rec is never back-propagated
        reconstruction = reconstruction.detach()
    return LossTerms(total=total, reconstruction=reconstruction, attention=attention)


class AttenCraft(TrainingMethod):
    def __init__(self, recipe: Recipe, context: MethodContext, probabilities: torch.Tensor) -> None:
        """probabilities: (N,) p_i = r_i / Σ_j r_j of drawing concept i alone (Eq. 6, or an ablation of it)."""
        super().__init__(recipe, context)
        self.probabilities = probabilities.float().cpu()
        masks = context.masks
        self.latent_masks = both_orientations(masks, lambda m: resize_masks(m, context.latent_size).float())
        self.attention_masks = both_orientations(masks, lambda m: resize_masks(m, context.cross_grid).float())

    def draw_subset(self, generator: torch.Generator) -> tuple[int, ...]:
        return draw_subset(self.probabilities, self.recipe.omega, generator)

    def prompt(self, subset: tuple[int, ...]) -> str:
        return concept_prompt(self.context.tokens, subset)

    def cross_grids(self) -> tuple[Grid, ...]:
        return (self.context.cross_grid,)

    def loss(self, step: StepInputs) -> LossTerms:
        index = list(step.subset)
        device = step.prediction.device
        terms = feature_retaining_loss(
            step.prediction,
            step.target,
            step.maps[self.context.cross_grid],
            self.latent_masks[step.flipped][index].to(device),
            self.attention_masks[step.flipped][index].to(device),
            self.recipe.attention_weight,
            self.recipe.multi_concept_loss,
        )
        return LossTerms(
            total=terms.total + prior_loss(step, self.recipe.prior_weight),
            reconstruction=terms.reconstruction,
            attention=terms.attention,
        )
