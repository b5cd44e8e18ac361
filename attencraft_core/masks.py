"""Attention-guided mask creation, paper Eq. 3-4 (SPEC 2.3)."""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from attencraft_core.config import MaskConfig


def min_max_normalize(maps: torch.Tensor) -> torch.Tensor:
    """Scale each map of (N, ...) to [0, 1]."""
    flat = maps.flatten(1)
    low = flat.min(dim=1, keepdim=True).values
    high = flat.max(dim=1, keepdim=True).values
    return ((flat - low) / (high - low).clamp_min(1e-12)).view_as(maps)


@dataclass(frozen=True)
class AttentionHeatmaps:
    """Each concept's attention on the self-attention grid, (N, H, W) in [0, 1], around Eq. 3's random walk."""

    before: torch.Tensor  # Â_C: the suppressed cross-attention (A_C)^υ
    after: torch.Tensor  # A_C^S: after τ steps of the self-attention random walk


def attention_heatmaps(
    cross_maps: torch.Tensor, self_attention: torch.Tensor, *, upsilon: float = 2.0, tau: int = 4
) -> AttentionHeatmaps:
    """Eq. 3: A_C^S = (A_S)^τ · vec((A_C)^υ), each map min-max normalised.

    cross_maps: (N, h, w); self_attention: (H*W, H*W) row-stochastic.
    """
    count, height, width = cross_maps.shape
    patches = self_attention.shape[0]
    grid_h = round(math.sqrt(patches * height / width))
    grid_w = patches // grid_h
    upsampled = F.interpolate(cross_maps[None].float(), size=(grid_h, grid_w), mode="bicubic", align_corners=False)[0]
    # Bicubic overshoots below zero near sharp edges; a negative value would change sign under the power.
    suppressed = min_max_normalize(upsampled.clamp_min(0.0) ** upsilon)  # Â_C, (N, H, W)
    random_walk = torch.linalg.matrix_power(self_attention.float(), tau)  # (A_S)^τ, (H*W, H*W)
    enhanced = (random_walk @ suppressed.reshape(count, patches).T).T  # (N, H*W)
    return AttentionHeatmaps(before=suppressed, after=min_max_normalize(enhanced.reshape(count, grid_h, grid_w)))


def enhanced_attention(
    cross_maps: torch.Tensor, self_attention: torch.Tensor, *, upsilon: float = 2.0, tau: int = 4
) -> torch.Tensor:
    """Eq. 3's A_C^S, (N, H, W) in [0, 1]."""
    return attention_heatmaps(cross_maps, self_attention, upsilon=upsilon, tau=tau).after


def winner_masks(enhanced: torch.Tensor, gamma: float = 0.1) -> torch.Tensor:
    """Eq. 4 on A_C^S (N, H, W): M_i(p) = 1 iff A_i(p) − A_j(p) > γ for all j ≠ i; disjoint by construction."""
    top2 = enhanced.topk(2, dim=0).values  # (2, H, W): best and runner-up score per pixel
    is_best = enhanced == top2[0:1]
    strongest_other = torch.where(is_best, top2[1:2], top2[0:1])  # max_{j≠i} A_j(p), (N, H, W)
    return enhanced - strongest_other > gamma


def delta_masks(
    cross_maps: torch.Tensor,
    self_attention: torch.Tensor,
    *,
    upsilon: float = 2.0,
    tau: int = 4,
    gamma: float = 0.1,
) -> torch.Tensor:
    """Eq. 3-4: bool (N, H, W) masks on the self-attention grid; pixels no concept wins are background."""
    return winner_masks(enhanced_attention(cross_maps, self_attention, upsilon=upsilon, tau=tau), gamma)


def resize_masks(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize bool (N, H, W) masks: area average when shrinking, bilinear when growing, then strictly > 0.5.

    The strict threshold keeps disjoint masks disjoint: two disjoint masks cannot both exceed one half at a pixel.
    """
    source = masks.float()[None]
    shrinking = size[0] < masks.shape[-2]
    resized = F.interpolate(source, size=size, mode="area" if shrinking else "bilinear", align_corners=None)[0]
    return resized > 0.5


def area_fractions(masks: torch.Tensor) -> torch.Tensor:
    """(N,) fraction of the image each bool mask covers."""
    return masks.flatten(1).float().mean(dim=1)


def localized(masks: torch.Tensor, config: MaskConfig) -> bool:
    return bool((area_fractions(masks) >= config.min_area_fraction).all())
