"""Each method's loss on a fixed batch equals the value computed here, independently, from BASELINES.md."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from attencraft_contract.methods import build_recipe
from attencraft_core.methods import create_method
from attencraft_core.methods.base import MethodContext, StepInputs
from attencraft_core.methods.disendiff import calibration_loss

CROSS = (4, 4)
LATENT = (8, 8)


def _context(masks: torch.Tensor | None) -> MethodContext:
    return MethodContext(
        class_names=["cat", "dog"],
        tokens=["<v1>", "<v2>"],
        token_ids=[1001, 1002],
        latent_size=LATENT,
        cross_grid=CROSS,
        masks=masks,
    )


def _masks() -> torch.Tensor:
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[0, 1:6, 0:3] = True
    masks[1, 2:8, 4:8] = True
    return masks


def _step(
    subset: tuple[int, ...], maps: dict, *, prior: bool, flipped: bool = False, valid: torch.Tensor | None = None
) -> StepInputs:
    generator = torch.Generator().manual_seed(7)
    return StepInputs(
        subset=subset,
        flipped=flipped,
        valid=valid,
        prediction=torch.randn(1, 4, *LATENT, generator=generator),
        target=torch.randn(1, 4, *LATENT, generator=generator),
        prior_prediction=torch.randn(2, 4, *LATENT, generator=generator) if prior else None,
        prior_target=torch.randn(2, 4, *LATENT, generator=generator) if prior else None,
        maps=maps,
    )


def _random_maps(count: int, grid: tuple[int, int], seed: int) -> torch.Tensor:
    return torch.rand(count, *grid, generator=torch.Generator().manual_seed(seed)) * 0.3


def _mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b) ** 2).sum() / a.numel())


def test_custom_diffusion_is_the_plain_noise_loss_plus_the_weighted_prior():
    method = create_method(build_recipe("custom_diffusion"), _context(None), None)
    step = _step((0, 1), {}, prior=True)
    expected = _mse(step.prediction, step.target) + 1.0 * _mse(step.prior_prediction, step.prior_target)
    assert float(method.loss(step).total) == pytest.approx(expected, rel=1e-6)
    without_prior = create_method(build_recipe("custom_diffusion", prior_preservation=False), _context(None), None)
    step = _step((0, 1), {}, prior=False)
    assert float(without_prior.loss(step).total) == pytest.approx(_mse(step.prediction, step.target), rel=1e-6)


def _gaussian_by_hand(image: torch.Tensor) -> torch.Tensor:
    """3x3 Gaussian, σ 0.5, reflect padding, written out pixel by pixel."""
    weight = [math.exp(-(d * d) / (2 * 0.25)) for d in (-1, 0, 1)]
    total = sum(weight)
    weight = [w / total for w in weight]
    height, width = image.shape

    def reflect(index: int, size: int) -> int:
        return -index if index < 0 else (2 * size - 2 - index if index >= size else index)

    out = torch.zeros_like(image)
    for y, x in itertools.product(range(height), range(width)):
        out[y, x] = sum(
            weight[dy + 1] * weight[dx + 1] * image[reflect(y + dy, height), reflect(x + dx, width)]
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
        )
    return out


def _iou_by_hand(a: torch.Tensor, b: torch.Tensor) -> float:
    inter = float((a * b).sum())
    return (inter + 1) / (float(a.sum()) + float(b.sum()) - inter + 1)


@pytest.mark.parametrize("name", ["custom_diffusion", "disendiff", "textual_localization_hard"])
def test_a_resize_augmented_step_counts_the_noise_error_inside_the_validity_mask_only(name):
    """BASELINES §1.4: L_rec = Σ M_valid (ŷ − y)² / Σ M_valid over (c, h, w)."""
    valid = torch.zeros(*LATENT)
    valid[1:5, 2:7] = 1
    count = 4 if name == "disendiff" else 2  # DisenDiff's maps: V_1, V_2, then c_1, c_2
    maps = {grid: _random_maps(count, grid, seed=index) for index, grid in enumerate([(2, 2), CROSS, (8, 8)])}
    method = create_method(build_recipe(name), _context(_masks()), None)
    step = _step((0, 1), maps, prior=False, valid=valid)
    inside = (step.prediction - step.target)[..., 1:5, 2:7]
    assert float(method.loss(step).reconstruction) == pytest.approx(float(inside.pow(2).mean()), rel=1e-6)


def test_disendiff_binding_and_separation_terms():
    maps = _random_maps(4, CROSS, seed=1)  # V_1, V_2, then c_1, c_2
    method = create_method(build_recipe("disendiff"), _context(None), None)
    step = _step((0, 1), {CROSS: maps}, prior=True)

    def normalized(index: int) -> torch.Tensor:
        m = maps[index]
        return _gaussian_by_hand((m - m.min()) / (m.max() - m.min() + 1e-8))

    modifiers = [normalized(0), normalized(1)]
    classes = [normalized(2) ** 2, normalized(3) ** 2]
    binding = sum(1 - _iou_by_hand(classes[i], modifiers[i]) for i in range(2))
    separation = _iou_by_hand(classes[0], classes[1])
    expected = (
        _mse(step.prediction, step.target)
        + _mse(step.prior_prediction, step.prior_target)
        + 0.01 * (binding + separation)
    )
    terms = method.loss(step)
    assert float(terms.attention) == pytest.approx(binding + separation, rel=1e-5)
    assert float(terms.total) == pytest.approx(expected, rel=1e-5)


def test_disendiff_binding_does_not_move_the_class_maps():
    maps = _random_maps(4, CROSS, seed=2).requires_grad_(True)
    method = create_method(build_recipe("disendiff", prior_preservation=False), _context(None), None)

    binding, _ = calibration_loss(maps[:2], maps[2:])
    (gradient,) = torch.autograd.grad(binding, maps)
    assert gradient[2:].abs().max() == 0 and gradient[:2].abs().max() > 0
    assert method.recorded_positions(torch.tensor([[0, 5, 1001, 7, 9, 1002, 8]]), (0, 1)).tolist() == [2, 5, 3, 6]


@pytest.mark.parametrize("soft", [False, True])
def test_textual_localization_regresses_the_resolution_averaged_map_onto_the_masks(soft):
    grids = [(2, 2), (4, 4), (8, 8)]
    maps = {grid: _random_maps(2, grid, seed=index) for index, grid in enumerate(grids)}
    name = "textual_localization_soft" if soft else "textual_localization_hard"
    method = create_method(build_recipe(name), _context(_masks()), None)
    assert method.cross_grids() == tuple(grids)
    step = _step((0, 1), maps, prior=True)

    per_concept = []
    for concept in range(2):
        averaged = torch.zeros(256, 256)
        for grid in grids:
            up = F.interpolate(maps[grid][concept][None, None], size=(256, 256), mode="bilinear")[0, 0]
            averaged += (up - up.min()) / (up.max() - up.min() + 1e-8) / 3
        target = F.interpolate(_masks()[concept].float()[None, None], size=(256, 256), mode="bilinear")[0, 0] > 0.5
        error = (averaged - target.float()) ** 2
        if soft:
            error = error * (~target).float()
        per_concept.append(float(error.mean()))
    guidance = sum(per_concept) / 2
    expected = _mse(step.prediction, step.target) + _mse(step.prior_prediction, step.prior_target) + guidance
    terms = method.loss(step)
    assert float(terms.attention) == pytest.approx(guidance, rel=1e-5)
    assert float(terms.total) == pytest.approx(expected, rel=1e-5)


def test_soft_guidance_ignores_attention_inside_the_object():
    hard = create_method(build_recipe("textual_localization_hard"), _context(_masks()), None)
    soft = create_method(build_recipe("textual_localization_soft"), _context(_masks()), None)
    inside = {(4, 4): torch.zeros(2, 4, 4)}
    inside[(4, 4)][0, 1, 0] = 1.0  # concept 0 attends only inside its mask (rows 1-5, columns 0-2 at 8x8)
    inside[(4, 4)][1, 2, 3] = 1.0
    step = _step((0, 1), inside, prior=False)
    assert float(soft.loss(step).attention) < float(hard.loss(step).attention)


def test_break_a_scene_masked_diffusion_and_attention_terms():
    maps = _random_maps(1, CROSS, seed=3)
    method = create_method(build_recipe("break_a_scene"), _context(_masks()), None)
    step = _step((1,), {CROSS: maps}, prior=True)
    latent_mask = _masks()[1].float()  # nearest to 8x8: itself
    reconstruction = float(((step.prediction * latent_mask - step.target * latent_mask) ** 2).mean())
    small = _masks()[1].float()[::2, ::2]  # nearest 8x8 -> 4x4 takes every other pixel
    attention = 0.01 * float(((small - maps[0] / maps[0].max()) ** 2).mean())
    expected = reconstruction + _mse(step.prior_prediction, step.prior_target) + attention
    terms = method.loss(step)
    assert float(terms.reconstruction) == pytest.approx(reconstruction, rel=1e-6)
    assert float(terms.attention) == pytest.approx(attention, rel=1e-5)
    assert float(terms.total) == pytest.approx(expected, rel=1e-5)


def test_break_a_scene_reads_its_masks_mirrored_before_resizing_on_a_mirrored_step():
    maps = _random_maps(1, CROSS, seed=3)
    method = create_method(build_recipe("break_a_scene"), _context(_masks()), None)
    step = _step((0,), {CROSS: maps}, prior=False, flipped=True)
    mirrored = _masks()[0].flip(-1).float()  # the photo and its masks mirrored together (BASELINES §4.3)
    reconstruction = float(((step.prediction * mirrored - step.target * mirrored) ** 2).mean())
    small = mirrored[::2, ::2]  # then nearest to 4x4: columns 0, 2, 4, 6 of the mirrored mask
    attention = 0.01 * float(((small - maps[0] / maps[0].max()) ** 2).mean())
    terms = method.loss(step)
    assert float(terms.reconstruction) == pytest.approx(reconstruction, rel=1e-6)
    assert float(terms.attention) == pytest.approx(attention, rel=1e-5)


@pytest.mark.parametrize("name", ["attencraft", "textual_localization_hard", "break_a_scene"])
def test_a_mirrored_step_reads_the_masks_as_if_they_had_been_drawn_mirrored(name):
    grids = [(2, 2), CROSS, (8, 8)]
    maps = {grid: _random_maps(2, grid, seed=index) for index, grid in enumerate(grids)}
    probabilities = torch.tensor([0.5, 0.5])
    method = create_method(build_recipe(name), _context(_masks()), probabilities)
    mirrored_masks = create_method(build_recipe(name), _context(_masks().flip(-1)), probabilities)
    flipped = method.loss(_step((0, 1), maps, prior=False, flipped=True))
    drawn = mirrored_masks.loss(_step((0, 1), maps, prior=False))
    plain = method.loss(_step((0, 1), maps, prior=False))
    assert float(flipped.total) == float(drawn.total) != float(plain.total)


def test_break_a_scene_sums_the_attention_term_over_the_subset():
    maps = _random_maps(2, CROSS, seed=4)
    method = create_method(build_recipe("break_a_scene"), _context(_masks()), None)
    both = float(method.loss(_step((0, 1), {CROSS: maps}, prior=False)).attention)
    first = float(method.loss(_step((0,), {CROSS: maps[:1]}, prior=False)).attention)
    second = float(method.loss(_step((1,), {CROSS: maps[1:]}, prior=False)).attention)
    assert both == pytest.approx(first + second, rel=1e-6)


def test_union_sampling_draws_every_subset_size_in_random_order():
    method = create_method(build_recipe("break_a_scene"), _context(_masks()), None)
    generator = torch.Generator().manual_seed(0)
    draws = [method.draw_subset(generator) for _ in range(400)]
    assert {len(d) for d in draws} == {1, 2}
    assert {(0, 1), (1, 0)} <= set(draws)
    assert method.prompt((1, 0)) == "a photo of <v2> and <v1>"


def test_prompts_follow_each_method():
    prompts = {
        name: create_method(build_recipe(name), _context(_masks()), torch.tensor([0.5, 0.5])).prompt((0, 1))
        for name in ("attencraft", "custom_diffusion", "disendiff", "textual_localization_hard")
    }
    assert prompts == {
        "attencraft": "a photo of <v1> and <v2>",
        "custom_diffusion": "photo of a <v1> cat and <v2> dog",
        "disendiff": "photo of a <v1> cat and <v2> dog",
        "textual_localization_hard": "photo of a <v1> cat and a <v2> dog",
    }
