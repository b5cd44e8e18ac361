import math

import pytest
import torch

from attencraft_core.ratios import attention_scores, sampling_probabilities, sampling_ratios


def test_two_concepts_by_hand():
    # S̄ = [0.75, 0.25]; softmax = [1/(1+e^-0.5), 1/(1+e^0.5)]; r = 1 - softmax.
    first = 1 / (1 + math.exp(-0.5))
    ratios = sampling_ratios(torch.tensor([0.6, 0.2]))
    torch.testing.assert_close(ratios, torch.tensor([1 - first, first]))
    assert float(ratios.sum()) == pytest.approx(1.0)
    torch.testing.assert_close(sampling_probabilities(ratios), ratios)


def test_three_concepts_by_hand():
    # S̄ = [0.25, 0.5, 0.25]
    e_quarter, e_half = math.exp(0.25), math.exp(0.5)
    total = 2 * e_quarter + e_half
    expected = torch.tensor([1 - e_quarter / total, 1 - e_half / total, 1 - e_quarter / total])
    ratios = sampling_ratios(torch.tensor([1.0, 2.0, 1.0]))
    torch.testing.assert_close(ratios, expected)
    assert float(ratios.sum()) == pytest.approx(2.0)  # N - 1
    torch.testing.assert_close(sampling_probabilities(ratios), expected / 2)


def test_a_semantically_rich_token_is_sampled_less():
    ratios = sampling_ratios(torch.tensor([0.9, 0.3, 0.5]))
    assert ratios.argmin() == 0 and ratios.argmax() == 1


def test_attention_scores_average_the_top_n_masked_values_over_timesteps():
    maps = torch.zeros(2, 2, 4, 4)  # (T, N, h, w)
    maps[0, 0, 0, :] = torch.tensor([0.9, 0.8, 0.7, 0.6])
    maps[1, 0, 0, :] = torch.tensor([0.5, 0.5, 0.5, 0.5])
    maps[:, 0, 3, 3] = 5.0  # outside concept 0's mask: must be ignored
    maps[:, 1, 2, 2] = 0.4
    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    masks[0, 0, :] = True
    masks[1, 2:, 2:] = True
    scores = attention_scores(maps, masks, top_n=2)
    torch.testing.assert_close(scores, torch.tensor([(0.85 + 0.5) / 2, 0.2]))
