"""The toy world's measures of one cell (evaluation/toy_measures.py) on hand-built pictures whose answers are known:
identity, leakage, sync, group identity, size ratio and mask IoU."""

import numpy as np
import pytest
from PIL import Image

from evaluation.metrics import Sample
from evaluation.toy_measures import toy_figures
from toyworld.measures import size_ratio
from toyworld.scenes import ToyObject, render_scene

APPLE = ToyObject("apple", "dark", (9.0, 9.0), 6.5, 0.0)
LEAF = ToyObject("leaf", "pale", (23.0, 22.0), 7.0, 0.5)
BIG_APPLE = ToyObject("apple", "dark", (16.0, 16.0), 6.5 * 2**0.5, 0.0)  # twice the area
SCENE = render_scene((APPLE, LEAF))


def picture(*objects: ToyObject) -> Image.Image:
    return Image.fromarray(render_scene(objects).image)


def mask(plane) -> Image.Image:
    return Image.fromarray(plane.astype("uint8") * 255)


def test_the_measures_of_a_cell_read_its_pictures_against_the_scene():
    samples = [
        Sample("a photo of <apple>", "apple", picture(APPLE)),  # right, its size
        Sample("a photo of <apple>", "apple", picture(BIG_APPLE)),  # right shade, twice the size
        Sample("a photo of <leaf>", "leaf", picture(LEAF, APPLE)),  # right, but the apple leaks in
        Sample("a photo of <leaf>", "leaf", picture(APPLE)),  # no leaf at all: no size either
        Sample("a photo of <apple> and <leaf>", None, picture(APPLE, LEAF)),
        Sample("a photo of <apple> and <leaf>", None, picture(LEAF)),
    ]
    masks = [mask(SCENE.masks[0]), mask(SCENE.masks[0])]  # the apple's mask given for both concepts

    figures = toy_figures(samples, SCENE, masks)

    apple, leaf = figures["per_concept"]["apple"], figures["per_concept"]["leaf"]
    assert (apple["identity"], apple["leakage"], leaf["identity"], leaf["leakage"]) == (1.0, 0.0, 0.5, 1.0)
    # Sizes: the mean over the pictures that draw the class (toyworld.measures.size_ratio, tested on its own).
    apple_sizes = [size_ratio(np.asarray(samples[index].image), APPLE) for index in (0, 1)]
    assert apple_sizes == [pytest.approx(1.0, abs=0.1), pytest.approx(2.0, rel=0.1)]
    assert apple["size_ratio"] == pytest.approx(sum(apple_sizes) / 2)
    assert leaf["size_ratio"] == pytest.approx(size_ratio(np.asarray(samples[2].image), LEAF))
    assert (apple["mask_iou"], leaf["mask_iou"]) == (1.0, 0.0)
    metrics = figures["metrics"]
    assert list(metrics) == ["mask_iou", "identity", "leakage", "sync", "group_identity", "size_ratio"]
    assert (metrics["mask_iou"], metrics["identity"], metrics["leakage"], metrics["sync"]) == (0.5, 0.75, 0.5, 0.5)
    assert metrics["group_identity"] == figures["group"]["identity"] == 0.5
    assert metrics["size_ratio"] == pytest.approx((apple["size_ratio"] + leaf["size_ratio"]) / 2)


def test_a_method_without_masks_has_no_mask_iou_and_a_concept_never_drawn_no_size():
    samples = [
        Sample("a photo of <apple>", "apple", picture(LEAF)),
        Sample("a photo of <leaf>", "leaf", picture(APPLE)),
        Sample("a photo of <apple> and <leaf>", None, picture(APPLE, LEAF)),
    ]

    figures = toy_figures(samples, SCENE, [])

    assert "mask_iou" not in figures["metrics"] and "size_ratio" not in figures["metrics"]
    assert (figures["metrics"]["identity"], figures["metrics"]["leakage"]) == (0.0, 1.0)
