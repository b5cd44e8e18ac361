"""The toy world's measures of a cell (toyworld/measures.py): the method's masks against the exact ones, and the
oracle's reading of every sample: identity (its class in its shade), leakage (another concept of the photo shows up
in a single-concept picture), synchronicity (spread of the concepts' identity rates), group identity (a group
picture shows every concept in its shade) and size ratio (drawn area over true area, over the single-concept
pictures that draw the concept's class at all; absent when none does)."""

from collections.abc import Sequence
from statistics import fmean
from typing import Any

import numpy as np
from PIL import Image

from evaluation.metrics import Sample
from toyworld.measures import group_identity, identity, leakage, mask_iou, size_ratio, synchronicity
from toyworld.scenes import SIZE, Scene


def _pixels(image: Image.Image) -> np.ndarray:
    """(SIZE, SIZE, 3) uint8, as the oracle reads pictures."""
    return np.asarray(image.convert("RGB").resize((SIZE, SIZE), Image.Resampling.BILINEAR))


def _bool_mask(mask: Image.Image) -> np.ndarray:
    return np.asarray(mask.convert("L").resize((SIZE, SIZE), Image.Resampling.NEAREST)) >= 128


def toy_figures(samples: Sequence[Sample], scene: Scene, method_masks: Sequence[Image.Image]) -> dict[str, Any]:
    objects = {obj.class_name: obj for obj in scene.objects}
    per_concept: dict[str, dict[str, float]] = {}
    for index, (name, concept) in enumerate(objects.items()):
        pictures = [_pixels(sample.image) for sample in samples if sample.concept == name]
        others = [obj for other, obj in objects.items() if other != name]
        per_concept[name] = {
            "identity": fmean(identity(picture, concept) for picture in pictures),
            "leakage": fmean(leakage(picture, concept, others) for picture in pictures),
        }
        sizes = [ratio for picture in pictures if (ratio := size_ratio(picture, concept)) is not None]
        if sizes:
            per_concept[name]["size_ratio"] = fmean(sizes)
        if method_masks:  # a method that uses no masks has no mask IoU
            per_concept[name]["mask_iou"] = mask_iou(_bool_mask(method_masks[index]), scene.masks[index])
    group = [_pixels(sample.image) for sample in samples if sample.concept is None]
    group_rate = fmean(group_identity(picture, list(objects.values())) for picture in group)
    identities = [figures["identity"] for figures in per_concept.values()]
    sizes = [figures["size_ratio"] for figures in per_concept.values() if "size_ratio" in figures]
    return {
        "metrics": {
            **({"mask_iou": fmean(f["mask_iou"] for f in per_concept.values())} if method_masks else {}),
            "identity": fmean(identities),
            "leakage": fmean(figures["leakage"] for figures in per_concept.values()),
            "sync": synchronicity(identities),
            "group_identity": group_rate,
            **({"size_ratio": fmean(sizes)} if sizes else {}),
        },
        "per_concept": per_concept,
        "group": {"identity": group_rate},
    }
