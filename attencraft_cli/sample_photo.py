"""A synthetic two-concept photo for the demo, the tests and the benchmarks: no download, no dataset needed."""

import numpy as np
from PIL import Image, ImageDraw


def two_object_photo(size: int = 256) -> Image.Image:
    """A red disc (a "ball") and a blue square (a "box") on a soft gradient."""
    gradient = np.linspace(150, 230, size, dtype=np.uint8)
    image = Image.fromarray(np.stack([np.tile(gradient, (size, 1))] * 3, axis=-1))
    draw = ImageDraw.Draw(image)
    draw.ellipse((size * 0.08, size * 0.25, size * 0.45, size * 0.62), fill=(200, 40, 40))
    draw.rectangle((size * 0.58, size * 0.3, size * 0.92, size * 0.72), fill=(40, 60, 200))
    return image
