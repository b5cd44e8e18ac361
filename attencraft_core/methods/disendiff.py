"""DisenDiff: attention calibration (Zhang et al., CVPR 2024, Sec. 3.2-3.3), as BASELINES §2 states it.

Custom Diffusion (K/V + modifier tokens, "photo of a V1 c1 and V2 c2" every step, prior preservation) plus two
losses on the 16x16 cross-attention of the training prompt. Binding: each modifier V_i should attend where its own
class word c_i attends (soft IoU against the class map, the class map detached). Separate & strengthen: the class
maps of different concepts should not overlap (soft IoU between them, minimised), after a suppression
f_m(A) = A ⊙ A so weak activations do not count. No masks: the frozen class words' attention gives the layout.

Maps: M_i = G(N(Ā_{V_i})), C_i = f_m(G(N(Ā_{c_i}))) with N the min-max normalisation (eps 1e-8) and G a 3x3
Gaussian of σ 0.5 with reflect padding; c_i is the token right after V_i (a multi-token class word's first
sub-token). IoU(a, b) = (Σ ab + 1) / (Σ a + Σ b − Σ ab + 1).
  L_bind = Σ_i [1 − IoU(sg(C_i), M_i)],  L_s&s = mean over pairs i < j of IoU(C_i, C_j),
  L = L_rec + λ_prior·L_prior + 0.01·(L_bind + L_s&s).
Paper Eq. 6 adds the calibration terms with no weight; the code scales them by 0.01 (`IoU_alpha`) and averages the
pairs for three concepts: we follow the code (the recipe's attention_weight), and average pairs for any N.
Class images use the joint class prompt "a cat and a dog" (the code's `class_prompt`), generated, not retrieved.
"""

import itertools

import torch
import torch.nn.functional as F

from attencraft_core.methods.base import Grid, LossTerms, StepInputs, TrainingMethod, prior_loss, reconstruction_loss
from attencraft_core.methods.custom_diffusion import modifier_prompt

GAUSSIAN_SIGMA = 0.5  # `gaussian: True` (configs/full.yaml)
IOU_SMOOTHING = 1.0


def min_max(maps: torch.Tensor) -> torch.Tensor:
    """N(A) per map of (K, h, w): (A − min A) / (max A − min A + 1e-8)."""
    flat = maps.flatten(1)
    low = flat.min(dim=1, keepdim=True).values
    high = flat.max(dim=1, keepdim=True).values
    return ((flat - low) / (high - low + 1e-8)).view_as(maps)


def gaussian_smooth(maps: torch.Tensor, sigma: float = GAUSSIAN_SIGMA) -> torch.Tensor:
    """G(A): 3x3 Gaussian of standard deviation σ, reflect padding 1, per map of (K, h, w)."""
    offsets = torch.tensor([-1.0, 0.0, 1.0], device=maps.device)
    weights = torch.exp(-(offsets**2) / (2 * sigma**2))
    weights = weights / weights.sum()
    kernel = (weights[:, None] * weights[None, :]).to(maps.dtype)[None, None]  # (1, 1, 3, 3)
    padded = F.pad(maps[:, None], (1, 1, 1, 1), mode="reflect")
    return F.conv2d(padded, kernel)[:, 0]


def soft_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(Σ a·b + 1) / (Σ a + Σ b − Σ a·b + 1) over the last two dimensions."""
    intersection = (a * b).sum(dim=(-2, -1))
    return (intersection + IOU_SMOOTHING) / (a.sum(dim=(-2, -1)) + b.sum(dim=(-2, -1)) - intersection + IOU_SMOOTHING)


def calibration_loss(modifier_maps: torch.Tensor, class_maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_bind, L_s&s) from (N, h, w) raw attention maps of the modifiers V_i and their class words c_i."""
    modifiers = gaussian_smooth(min_max(modifier_maps))  # M_i
    classes = gaussian_smooth(min_max(class_maps)).pow(2)  # C_i = f_m(G(N(A)))
    binding = (1 - soft_iou(classes.detach(), modifiers)).sum()
    pairs = list(itertools.combinations(range(classes.shape[0]), 2))
    separation = torch.stack([soft_iou(classes[i], classes[j]) for i, j in pairs]).mean()
    return binding, separation


def joint_class_prompt(class_names: list[str]) -> str:
    """ "a cat and a dog", "a cat, a dog and a bird"."""
    phrases = [f"a {name}" for name in class_names]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


class DisenDiff(TrainingMethod):
    def draw_subset(self, generator: torch.Generator) -> tuple[int, ...]:
        return tuple(range(self.count))  # every step: the full prompt (the code never reads random_change_*)

    def prompt(self, subset: tuple[int, ...]) -> str:
        return modifier_prompt(self.context.tokens, self.context.class_names, " and ")

    def cross_grids(self) -> tuple[Grid, ...]:
        return (self.context.cross_grid,)  # 16x16 at 512 px (`attn16`)

    def recorded_positions(self, input_ids: torch.Tensor, subset: tuple[int, ...]) -> torch.Tensor:
        """The N modifier positions m_i, then the N class-word positions m_i + 1."""
        modifiers = super().recorded_positions(input_ids, subset)
        return torch.cat([modifiers, modifiers + 1])

    def prior_prompts(self) -> list[str]:
        return [joint_class_prompt(self.context.class_names)]

    def loss(self, step: StepInputs) -> LossTerms:
        maps = step.maps[self.context.cross_grid]  # (2N, h', w')
        binding, separation = calibration_loss(maps[: self.count], maps[self.count :])
        calibration = binding + separation
        reconstruction = reconstruction_loss(step)
        total = reconstruction + prior_loss(step, self.recipe.prior_weight) + self.recipe.attention_weight * calibration
        return LossTerms(total=total, reconstruction=reconstruction, attention=calibration)
