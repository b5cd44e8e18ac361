"""Adaptive sampling-ratio estimation, paper Eq. 5-6 (SPEC 2.4)."""

import torch

from attencraft_contract.methods import Ratios


def attention_scores(cross_maps: torch.Tensor, masks: torch.Tensor, top_n: int = 5) -> torch.Tensor:
    """Eq. 5: S_i = mean over t of the mean of the n largest values of A_M = A_C ⊙ M_i.

    cross_maps: (T, N, h, w) maps of the N tokens at the T timesteps; masks: bool (N, h, w). Returns (N,).
    """
    masked = cross_maps * masks.to(cross_maps.dtype)  # A_M, (T, N, h, w)
    top = masked.flatten(2).topk(top_n, dim=-1).values  # (T, N, n)
    return top.mean(dim=-1).mean(dim=0)


def sampling_ratios(scores: torch.Tensor, mode: Ratios = Ratios.ADAPTIVE) -> torch.Tensor:
    """Eq. 6: r_i = 1 − softmax(S̄)_i with S̄_i = S_i / Σ_j S_j. For N = 2 they sum to 1, in general to N − 1.

    Ablations (Sec. IV-D, Table II): `no_softmax` drops the Softmax, r_i = 1 − S̄_i (also summing to N − 1);
    `equal` gives every concept 1/N whatever the scores.
    """
    if mode == Ratios.EQUAL:
        return torch.full_like(scores, 1.0 / scores.shape[0])
    normalized = scores / scores.sum()
    if mode == Ratios.NO_SOFTMAX:
        return 1.0 - normalized
    return 1.0 - torch.softmax(normalized, dim=0)


def sampling_probabilities(ratios: torch.Tensor) -> torch.Tensor:
    """p_i = r_i / Σ_j r_j: the probability of drawing concept i alone in a single-concept step."""
    return ratios / ratios.sum()
