import numpy as np
import pytest

from toyworld.measures import group_identity, identity, leakage, mask_iou, shows_class, size_ratio, synchronicity
from toyworld.scenes import ToyObject, render_scene

APPLE = ToyObject("apple", "dark", (9.0, 9.0), 6.5, 0.0)
LEAF = ToyObject("leaf", "pale", (23.0, 22.0), 7.0, 0.5)


def test_mask_iou():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[:2] = True
    b[1:3] = True
    assert mask_iou(a, b) == pytest.approx(4 / 12)
    assert mask_iou(a, a) == 1.0
    assert mask_iou(np.zeros((2, 2), bool), np.zeros((2, 2), bool)) == 1.0


def test_identity_needs_the_right_class_in_the_right_shade():
    picture = render_scene((APPLE,)).image
    assert identity(picture, APPLE) == 1.0
    assert identity(picture, ToyObject("apple", "pale", (9.0, 9.0), 6.5, 0.0)) == 0.0
    assert shows_class(picture, "apple") and not shows_class(picture, "leaf")


def test_leakage_is_another_concept_of_the_photo_showing_up():
    both = render_scene((APPLE, LEAF)).image
    alone = render_scene((APPLE,)).image
    assert leakage(both, APPLE, [APPLE, LEAF]) == 1.0
    assert leakage(alone, APPLE, [APPLE, LEAF]) == 0.0


def test_group_identity_needs_every_concept():
    assert group_identity(render_scene((APPLE, LEAF)).image, [APPLE, LEAF]) == 1.0
    assert group_identity(render_scene((APPLE,)).image, [APPLE, LEAF]) == 0.0


def test_synchronicity_is_the_spread_of_identity_rates():
    assert synchronicity([0.9, 0.5]) == pytest.approx(0.4)
    assert synchronicity([0.7, 0.7]) == 0.0


def test_size_ratio_compares_the_drawn_area_with_the_concepts_own():
    double = ToyObject("apple", "dark", (16.0, 16.0), 6.5 * 2**0.5, 0.0)
    assert size_ratio(render_scene((APPLE,)).image, APPLE) == pytest.approx(1.0, abs=0.1)
    assert size_ratio(render_scene((double,)).image, APPLE) == pytest.approx(2.0, rel=0.1)
    assert size_ratio(render_scene((LEAF,)).image, APPLE) is None
