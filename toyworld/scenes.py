"""Scenes drawn by a program, so every object's class, identity and mask are known exactly.

A scene is a 32x32 picture on a grey background holding a few objects. An object's class is a colour AND a shape
(an apple is a red disc, a leaf a green triangle), and its identity within the class is a shade (pale, normal,
dark) that captions never name: a customised concept must learn the shade from the photo alone.
"""

import math
from dataclasses import dataclass

import numpy as np

SIZE = 32
SUPERSAMPLING = 4  # coverage of a pixel = fraction of its 4x4 sub-samples inside the shape: anti-aliased edges
BACKGROUND_LEVELS = (150, 205)  # the grey background's brightness range
HELD_OUT_SEEDS = 10**9  # scenes for evaluation draw from seeds at and above this; training scenes below it
RADIUS_RANGE = (5.0, 8.0)  # circumradius in pixels
MIN_GAP = 1.5  # pixels between the circumscribed circles of two objects

SHAPES = ("disc", "triangle", "square")
SHADES = ("pale", "normal", "dark")


@dataclass(frozen=True)
class ToyClass:
    name: str
    colour: tuple[int, int, int]
    shape: str


CLASSES = {
    toy_class.name: toy_class
    for toy_class in (
        ToyClass("apple", (220, 30, 30), "disc"),
        ToyClass("cheese", (235, 200, 20), "triangle"),
        ToyClass("leaf", (30, 170, 40), "triangle"),
        ToyClass("bubble", (20, 200, 220), "disc"),
        ToyClass("box", (30, 60, 220), "square"),
        ToyClass("candy", (215, 30, 200), "square"),
    )
}
CLASS_NAMES = tuple(CLASSES)


def shade_colour(colour: tuple[int, int, int], shade: str) -> np.ndarray:
    """(3,) float RGB of a class colour in a shade: pale mixes in white, dark darkens."""
    base = np.asarray(colour, dtype=np.float64)
    if shade == "pale":
        return base + (255.0 - base) * 0.5
    if shade == "dark":
        return base * 0.5
    return base


@dataclass(frozen=True)
class ToyObject:
    class_name: str
    shade: str
    centre: tuple[float, float]  # (x, y) in pixels
    radius: float  # circumradius in pixels
    rotation: float  # radians

    @property
    def shape(self) -> str:
        return CLASSES[self.class_name].shape

    @property
    def colour(self) -> np.ndarray:
        return shade_colour(CLASSES[self.class_name].colour, self.shade)


def polygon_vertices(shape: str, centre: tuple[float, float], radius: float, rotation: float) -> np.ndarray:
    """(K, 2) vertices of a regular triangle or square with the given circumradius."""
    corners = {"triangle": 3, "square": 4}[shape]
    angles = rotation + 2 * math.pi * np.arange(corners) / corners
    return np.stack([centre[0] + radius * np.cos(angles), centre[1] + radius * np.sin(angles)], axis=1)


def shape_coverage(
    shape: str, centre: tuple[float, float], radius: float, rotation: float, size: int = SIZE
) -> np.ndarray:
    """(size, size) fraction in [0, 1] of each pixel covered by the shape (supersampled)."""
    offsets = (np.arange(SUPERSAMPLING) + 0.5) / SUPERSAMPLING
    coords = (np.arange(size)[:, None] + offsets[None, :]).reshape(-1)  # sub-sample centres along one axis
    ys, xs = np.meshgrid(coords, coords, indexing="ij")
    if shape == "disc":
        inside = (xs - centre[0]) ** 2 + (ys - centre[1]) ** 2 <= radius**2
    else:
        vertices = polygon_vertices(shape, centre, radius, rotation)
        inside = np.ones_like(xs, dtype=bool)
        for start, end in zip(vertices, np.roll(vertices, -1, axis=0), strict=True):
            # Counter-clockwise vertices: inside lies left of every edge.
            cross = (end[0] - start[0]) * (ys - start[1]) - (end[1] - start[1]) * (xs - start[0])
            inside &= cross >= 0
    return inside.reshape(size, SUPERSAMPLING, size, SUPERSAMPLING).mean(axis=(1, 3))


@dataclass(frozen=True)
class Scene:
    objects: tuple[ToyObject, ...]
    image: np.ndarray  # (SIZE, SIZE, 3) uint8
    masks: tuple[np.ndarray, ...]  # per object, (SIZE, SIZE) bool: pixels at least half covered

    def caption(self) -> str:
        """The caption the base model is trained on: the core's prompt form, classes only ("a photo of X and Y")."""
        return "a photo of " + " and ".join(obj.class_name for obj in self.objects)


def render_scene(objects: tuple[ToyObject, ...], background: float = 180.0, size: int = SIZE) -> Scene:
    canvas = np.full((size, size, 3), background, dtype=np.float64)
    masks = []
    for obj in objects:
        coverage = shape_coverage(obj.shape, obj.centre, obj.radius, obj.rotation, size)
        canvas = canvas * (1.0 - coverage[..., None]) + obj.colour * coverage[..., None]
        masks.append(coverage >= 0.5)
    image = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    return Scene(objects=tuple(objects), image=image, masks=tuple(masks))


def random_objects(
    rng: np.random.Generator, class_names: tuple[str, ...], size: int = SIZE, shades: tuple[str, ...] | None = None
) -> tuple[ToyObject, ...]:
    """Objects of the given classes at random places that do not overlap (their circumcircles keep apart)."""
    while True:
        objects: list[ToyObject] = []
        for index, name in enumerate(class_names):
            radius = float(rng.uniform(*RADIUS_RANGE))
            for _ in range(50):
                centre = (float(rng.uniform(radius, size - radius)), float(rng.uniform(radius, size - radius)))
                if all(math.dist(centre, other.centre) >= radius + other.radius + MIN_GAP for other in objects):
                    break
            else:
                break
            shade = shades[index] if shades else str(rng.choice(SHADES))
            objects.append(ToyObject(name, shade, centre, radius, float(rng.uniform(0, 2 * math.pi))))
        if len(objects) == len(class_names):
            return tuple(objects)


def random_scene(rng: np.random.Generator, count: int) -> Scene:
    """A training scene: `count` objects of distinct random classes and shades, on a random grey."""
    names = tuple(str(name) for name in rng.choice(CLASS_NAMES, size=count, replace=False))
    background = float(rng.uniform(*BACKGROUND_LEVELS))
    return render_scene(random_objects(rng, names), background)


def held_out_scene(seed: int, objects: int = 2) -> Scene:
    """An evaluation scene: `objects` objects of distinct classes, from seeds training never uses."""
    if seed < 0 or not 1 <= objects <= len(CLASSES):
        raise ValueError(f"a held-out scene needs a seed >= 0 and 1 to {len(CLASSES)} objects")
    return random_scene(np.random.default_rng(HELD_OUT_SEEDS + seed), objects)


def held_out_scenes(count: int) -> list[Scene]:
    """Two-object held-out scenes from seeds 0, 1, ..., count - 1."""
    return [held_out_scene(seed) for seed in range(count)]
