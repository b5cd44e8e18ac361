"""The toy world's measures with ground truth: mask quality, identity, leakage between concepts, synchronicity.

Each takes pictures and the objects of the scene a concept set was learnt from, and asks the oracle.
"""

from collections.abc import Sequence

import numpy as np

from toyworld.oracle import SeenObject, read_picture
from toyworld.scenes import ToyObject, shape_coverage


def mask_iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    """IoU of two (H, W) bool masks; 1.0 when both are empty."""
    union = np.logical_or(predicted, truth).sum()
    return float(np.logical_and(predicted, truth).sum() / union) if union else 1.0


def _well_formed(image: np.ndarray) -> list[SeenObject]:
    return [obj for obj in read_picture(image) if obj.well_formed]


def shows_class(image: np.ndarray, class_name: str) -> bool:
    return any(obj.class_name == class_name for obj in _well_formed(image))


def identity(image: np.ndarray, concept: ToyObject) -> float:
    """1.0 when the picture shows the concept itself: a well-formed object of its class in its shade."""
    return float(
        any(obj.class_name == concept.class_name and obj.shade == concept.shade for obj in _well_formed(image))
    )


def leakage(image: np.ndarray, concept: ToyObject, others: Sequence[ToyObject]) -> float:
    """For a picture of one concept: 1.0 when another concept of its photo shows up in it (fused features)."""
    names = {other.class_name for other in others if other.class_name != concept.class_name}
    return float(any(obj.class_name in names for obj in _well_formed(image)))


def size_ratio(image: np.ndarray, concept: ToyObject) -> float | None:
    """Area of the drawn object of the concept's class over the concept's own area in its photo (None if absent).

    Drawn objects are counted even when malformed, so an object drawn several times too large shows here."""
    drawn = [obj for obj in read_picture(image) if obj.class_name == concept.class_name]
    if not drawn:
        return None
    true_area = shape_coverage(concept.shape, concept.centre, concept.radius, concept.rotation).sum()
    return float(drawn[0].mask.sum() / true_area)


def group_identity(image: np.ndarray, concepts: Sequence[ToyObject]) -> float:
    """For a picture of all concepts together: 1.0 when every one of them is there, each in its own shade."""
    return float(all(identity(image, concept) for concept in concepts))


def synchronicity(identities: Sequence[float]) -> float:
    """How far apart the concepts of one set were learnt: max - min of their identity rates (0 = in step)."""
    return float(max(identities) - min(identities)) if identities else 0.0
