"""Reads the truth back out of any toy picture: which objects it shows, their class, shade, shape and mask.

Objects are coloured on a grey background, so saturated pixels are objects; a connected saturated region's hue
names its class's colour, its mean colour the nearest shade, and the IoU of the region with the class's shape
(best placed) says whether the model drew the right shape. On rendered scenes it reads every object right
(tests/toyworld/test_oracle.py); on generated pictures it is the judge.
"""

import colorsys
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from toyworld.scenes import CLASSES, SHADES, SHAPES, shade_colour, shape_coverage

SATURATION_THRESHOLD = 0.2
MIN_AREA = 8  # pixels; smaller specks are noise, not objects
MIN_SHAPE_FIT = 0.6  # IoU with the best-placed class shape for an object to count as well formed
RADIUS_BOUNDS = (3.0, 12.0)  # circumradii of plausible objects (scenes draw 5-8)
ROTATIONS = 24
AREA_PER_SQUARED_RADIUS = {"disc": math.pi, "triangle": 3 * math.sqrt(3) / 4, "square": 2.0}


@dataclass(frozen=True)
class SeenObject:
    class_name: str
    shade: str
    mask: np.ndarray  # (H, W) bool
    shape_fit: float  # IoU of the mask with the class's shape, best placed
    radius: float  # circumradius implied by the area
    best_shape: str  # the shape (disc, triangle, square) the mask fits best

    @property
    def well_formed(self) -> bool:
        """One compact object of plausible size: not a speck, not merged with another, not drawn far too large.

        The class's shape must fit, not necessarily best: at 32x32 a generated disc and square differ by a few
        pixels (their IoU is 0.85), so demanding the best fit would judge the base model's drawing, not the
        concept."""
        return self.shape_fit >= MIN_SHAPE_FIT and RADIUS_BOUNDS[0] <= self.radius <= RADIUS_BOUNDS[1]


def _hue_distance(a: float, b: float) -> float:
    distance = abs(a - b) % 1.0
    return min(distance, 1.0 - distance)


_CLASS_HUES = {name: colorsys.rgb_to_hsv(*(np.asarray(c.colour) / 255.0))[0] for name, c in CLASSES.items()}


def classify_colour(rgb: np.ndarray) -> str:
    """The class whose colour has the nearest hue to an (3,) RGB colour in 0-255."""
    hue = colorsys.rgb_to_hsv(*(rgb / 255.0))[0]
    return min(_CLASS_HUES, key=lambda name: _hue_distance(hue, _CLASS_HUES[name]))


def classify_shade(class_name: str, rgb: np.ndarray) -> str:
    colour = CLASSES[class_name].colour
    return min(SHADES, key=lambda shade: float(np.linalg.norm(shade_colour(colour, shade) - rgb)))


def shape_fit(shape: str, mask: np.ndarray) -> tuple[float, float]:
    """(best IoU of the mask with the shape centred on its centroid over rotations, implied circumradius)."""
    area = float(mask.sum())
    radius = math.sqrt(area / AREA_PER_SQUARED_RADIUS[shape])
    ys, xs = np.nonzero(mask)
    centre = (float(xs.mean()) + 0.5, float(ys.mean()) + 0.5)
    symmetry = {"disc": 1, "triangle": 3, "square": 4}[shape]
    rotations = [0.0] if shape == "disc" else [2 * math.pi / symmetry * i / ROTATIONS for i in range(ROTATIONS)]
    best = 0.0
    for rotation in rotations:
        template = shape_coverage(shape, centre, radius, rotation, mask.shape[0]) >= 0.5
        union = np.logical_or(template, mask).sum()
        best = max(best, float(np.logical_and(template, mask).sum() / union) if union else 0.0)
    return best, radius


def read_picture(image: np.ndarray) -> list[SeenObject]:
    """Every object an (H, W, 3) uint8 picture shows, largest first."""
    rgb = image.astype(np.float64)
    high, low = rgb.max(axis=2), rgb.min(axis=2)
    saturation = np.where(high > 0, (high - low) / np.maximum(high, 1e-9), 0.0)
    regions, count = ndimage.label(saturation > SATURATION_THRESHOLD)
    seen = []
    for label in range(1, count + 1):
        mask = regions == label
        if mask.sum() < MIN_AREA:
            continue
        # The colour is read where the region is solid (away from anti-aliased edges) when it has such pixels.
        core = ndimage.binary_erosion(mask)
        colour = rgb[core if core.sum() >= 3 else mask].mean(axis=0)
        class_name = classify_colour(colour)
        fits = {shape: shape_fit(shape, mask) for shape in SHAPES}
        fit, radius = fits[CLASSES[class_name].shape]
        best_shape = max(fits, key=lambda shape: fits[shape][0])
        seen.append(SeenObject(class_name, classify_shade(class_name, colour), mask, fit, radius, best_shape))
    return sorted(seen, key=lambda obj: -int(obj.mask.sum()))
