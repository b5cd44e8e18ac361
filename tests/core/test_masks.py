import pytest
import torch

from attencraft_core.masks import attention_heatmaps, delta_masks, enhanced_attention, min_max_normalize, resize_masks
from tests.core.synthetic import REGIONS_2, REGIONS_3, block_self_attention, iou, noisy_cross_maps, region_masks

CASES = [(REGIONS_2, [0.4, 0.3]), (REGIONS_3, [0.4, 0.3, 0.3])]


def _ious(masks: torch.Tensor, truth: torch.Tensor) -> list[float]:
    return [iou(m, t) for m, t in zip(masks, truth, strict=True)]


@pytest.mark.parametrize(("regions", "background"), CASES, ids=["N=2", "N=3"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_delta_masks_recover_known_regions(regions, background, seed):
    truth = region_masks(regions)
    masks = delta_masks(noisy_cross_maps(truth, background, seed), block_self_attention(truth))
    assert masks.shape == truth.shape
    assert masks.dtype == torch.bool
    assert min(_ious(masks, truth)) >= 0.9


@pytest.mark.parametrize(("regions", "background"), CASES, ids=["N=2", "N=3"])
def test_without_suppression_the_stronger_background_leaks_into_a_mask(regions, background):
    truth = region_masks(regions)
    cross, self_attention = noisy_cross_maps(truth, background, seed=0), block_self_attention(truth)
    full = _ious(delta_masks(cross, self_attention), truth)
    unsuppressed = _ious(delta_masks(cross, self_attention, upsilon=1.0), truth)
    assert min(unsuppressed) < 0.5 < min(full)


@pytest.mark.parametrize(("regions", "background"), CASES, ids=["N=2", "N=3"])
def test_without_enhancement_noise_fragments_the_masks(regions, background):
    truth = region_masks(regions)
    cross, self_attention = noisy_cross_maps(truth, background, seed=0), block_self_attention(truth)
    full = _ious(delta_masks(cross, self_attention), truth)
    unenhanced = _ious(delta_masks(cross, self_attention, tau=0), truth)
    assert sum(unenhanced) / len(unenhanced) < sum(full) / len(full) - 0.05


def test_masks_are_disjoint_and_respect_gamma():
    torch.manual_seed(0)
    cross = torch.rand(3, 16, 16)
    self_attention = torch.softmax(torch.randn(1024, 1024) * 3, dim=1)
    masks = delta_masks(cross, self_attention, gamma=0.1)
    assert int(masks.sum(dim=0).max()) <= 1
    enhanced = enhanced_attention(cross, self_attention)
    for i in range(3):
        others = torch.stack([enhanced[j] for j in range(3) if j != i]).amax(dim=0)
        assert torch.equal(masks[i], enhanced[i] - others > 0.1)


def test_enhancement_is_a_tau_step_random_walk():
    torch.manual_seed(1)
    cross = torch.rand(2, 16, 16)
    # Mostly self-loops, so four steps do not wash the maps out to a constant.
    self_attention = 0.7 * torch.eye(1024) + 0.3 * torch.softmax(torch.randn(1024, 1024), dim=1)
    upsampled = torch.nn.functional.interpolate(cross[None], size=(32, 32), mode="bicubic", align_corners=False)[0]
    suppressed = min_max_normalize(upsampled.clamp_min(0) ** 2).reshape(2, 1024)
    walked = suppressed
    for _ in range(4):
        walked = walked @ self_attention.T
    expected = min_max_normalize(walked.reshape(2, 32, 32))
    torch.testing.assert_close(enhanced_attention(cross, self_attention), expected, rtol=1e-4, atol=1e-5)
    heatmaps = attention_heatmaps(cross, self_attention)  # what the job shows: before and after the walk
    torch.testing.assert_close(heatmaps.before, suppressed.reshape(2, 32, 32))
    torch.testing.assert_close(heatmaps.after, expected, rtol=1e-4, atol=1e-5)


def test_resizing_keeps_disjoint_masks_disjoint():
    truth = region_masks(REGIONS_3)
    for size in [(16, 16), (64, 64), (8, 8)]:
        resized = resize_masks(truth, size)
        assert resized.shape == (3, *size)
        assert int(resized.sum(dim=0).max()) <= 1
    assert torch.equal(resize_masks(truth, (64, 64))[:, ::2, ::2], truth)
