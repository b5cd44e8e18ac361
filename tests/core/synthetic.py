"""Synthetic attention with known regions: noisy cross-attention blobs and a block-structured self-attention."""

import torch
import torch.nn.functional as F

GRID = 32  # self-attention grid
CROSS = 16  # cross-attention grid

REGIONS_2 = [(slice(4, 22), slice(2, 14)), (slice(8, 28), slice(17, 30))]
REGIONS_3 = [(slice(2, 14), slice(2, 14)), (slice(2, 14), slice(18, 30)), (slice(18, 30), slice(8, 24))]


def region_masks(regions: list[tuple[slice, slice]]) -> torch.Tensor:
    masks = torch.zeros(len(regions), GRID, GRID, dtype=torch.bool)
    for index, (rows, cols) in enumerate(regions):
        masks[index, rows, cols] = True
    return masks


def block_self_attention(masks: torch.Tensor, leak: float = 0.02) -> torch.Tensor:
    """Each patch attends uniformly to the patches of its own segment (a concept or the background)."""
    segment = torch.full((GRID * GRID,), len(masks), dtype=torch.long)
    for index, mask in enumerate(masks):
        segment[mask.flatten()] = index
    same = (segment[:, None] == segment[None, :]).float()
    attention = same / same.sum(dim=1, keepdim=True) * (1 - leak) + leak / (GRID * GRID)
    return attention  # row-stochastic (1024, 1024)


def noisy_cross_maps(masks: torch.Tensor, background: list[float], seed: int, noise: float = 0.15) -> torch.Tensor:
    """Token i: 1.0 on its region, 0.3 on the other concepts, `background[i]` elsewhere, plus uniform noise.

    The backgrounds differ between tokens, so without suppression the stronger one spills into the background.
    """
    generator = torch.Generator().manual_seed(seed)
    count = len(masks)
    anywhere = masks.any(dim=0)
    maps = torch.empty(count, GRID, GRID)
    for index in range(count):
        maps[index] = torch.where(masks[index], 1.0, torch.where(anywhere, 0.3, background[index]))
    maps = maps + (torch.rand(maps.shape, generator=generator) * 2 - 1) * noise
    small = F.interpolate(maps[None], size=(CROSS, CROSS), mode="area")[0]
    return small.clamp_min(0.0)


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a & b).sum() / (a | b).sum().clamp_min(1))
