"""Helpers for tests on the tiny model."""

import numpy as np
import torch
from PIL import Image, ImageDraw

from attencraft_core.models import BaseModel

TRAIN_STEPS = 8


def two_object_image(size: int = 256) -> Image.Image:
    """A red disc and a blue square on a soft gradient: a synthetic two-concept photo."""
    gradient = np.linspace(150, 230, size, dtype=np.uint8)
    image = Image.fromarray(np.stack([np.tile(gradient, (size, 1))] * 3, axis=-1))
    draw = ImageDraw.Draw(image)
    draw.ellipse((size * 0.08, size * 0.25, size * 0.45, size * 0.62), fill=(200, 40, 40))
    draw.rectangle((size * 0.58, size * 0.3, size * 0.92, size * 0.72), fill=(40, 60, 200))
    return image


def state(model: BaseModel) -> dict[str, torch.Tensor]:
    """Every base weight of the pipeline, cloned."""
    pipeline = model.pipeline
    return {
        f"{part}.{name}": tensor.detach().clone()
        for part, module in (("unet", pipeline.unet), ("vae", pipeline.vae), ("text", pipeline.text_encoder))
        for name, tensor in module.state_dict().items()
    }


def changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> set[str]:
    return {name for name, tensor in before.items() if not torch.equal(tensor, after[name])}
