"""The photo a training step sees: as given, mirrored, or resized the way Custom Diffusion's code augments it.

Mirroring (the recipe's `hflip`, Break-a-Scene's and the official Custom Diffusion and DisenDiff runs'): with
probability 0.5 the step trains on the photo mirrored left-right; both latents are encoded once.

Resize augmentation (the recipe's `resize_augmentation`; BASELINES §1.3 and §2.3, diffusers
`examples/custom_diffusion/train_custom_diffusion.py` `CustomDiffusionDataset`, which DisenDiff's dataset repeats):
with probability 0.66 the photo is shrunk to a random side s in [S/3, S] and pasted at a random place on a zero
canvas (the latent-grid region it covers, less a one-cell border, is the loss's validity mask M_valid), otherwise
enlarged to s in [1.2 S, 1.4 S) and randomly cropped back to S (M_valid all ones). A photo shrunk below 0.6 S gets
"a far away " or "very small " in front of the prompt, an enlarged one "zoomed in " or "close up ". The photo is
mirrored first where the recipe also flips, as in the code. Such a step encodes its own latent (the VAE runs once
per step).
"""

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps

from attencraft_contract.methods import Recipe
from attencraft_core.models import BaseModel

FAR_PREFIXES = ("a far away ", "very small ")
NEAR_PREFIXES = ("zoomed in ", "close up ")
SHRINK_PROBABILITY = 0.66


@dataclass(frozen=True)
class ResizedPhoto:
    pixels: torch.Tensor  # (1, 3, S, S) in [-1, 1], zero where the canvas shows no photo
    valid: torch.Tensor  # (h, w) float M_valid on the latent grid
    prefix: str  # what the prompt gets in front: "" unless the photo was shrunk below 0.6 S or enlarged


@dataclass(frozen=True)
class StepPhoto:
    latents: torch.Tensor  # (1, 4, h, w)
    flipped: bool
    valid: torch.Tensor | None  # (h, w) M_valid of a resize-augmented step, None otherwise (all ones)
    prefix: str


def _randint(low: int, high: int, generator: torch.Generator) -> int:
    """Uniform in [low, high), like numpy.random.randint."""
    return int(torch.randint(low, high, (), generator=generator))


def resize_augmentation(photo: Image.Image, latent_size: int, generator: torch.Generator) -> ResizedPhoto:
    """One draw of Custom Diffusion's resize augmentation of a square RGB photo of side S."""
    size = photo.width
    factor = size // latent_size
    if torch.rand((), generator=generator).item() < SHRINK_PROBABILITY:
        scale = _randint(size // 3, size + 1, generator)
    else:
        scale = _randint(int(1.2 * size), int(1.4 * size), generator)
    outer, inner = (scale, size) if scale > size else (size, scale)
    top, left = _randint(0, outer - inner + 1, generator), _randint(0, outer - inner + 1, generator)
    resized = np.asarray(photo.resize((scale, scale), Image.Resampling.BILINEAR), dtype=np.float32) / 127.5 - 1.0
    if scale > size:
        canvas = resized[top : top + size, left : left + size]
        valid = torch.ones(latent_size, latent_size)
    else:
        canvas = np.zeros((size, size, 3), dtype=np.float32)
        canvas[top : top + scale, left : left + scale] = resized
        valid = torch.zeros(latent_size, latent_size)
        valid[top // factor + 1 : (top + scale) // factor - 1, left // factor + 1 : (left + scale) // factor - 1] = 1
    prefix = ""
    if scale < 0.6 * size:
        prefix = FAR_PREFIXES[_randint(0, 2, generator)]
    elif scale > size:
        prefix = NEAR_PREFIXES[_randint(0, 2, generator)]
    pixels = torch.from_numpy(np.ascontiguousarray(canvas)).permute(2, 0, 1)[None]
    return ResizedPhoto(pixels=pixels, valid=valid, prefix=prefix)


class TrainingPhoto:
    """The photo of a training run and what its recipe does to it in each step."""

    def __init__(self, model: BaseModel, photo: Image.Image, latents: torch.Tensor, recipe: Recipe) -> None:
        """photo: RGB at the model's resolution (pipeline.prepare_image); latents: its (1, 4, h, w) encoding."""
        self.model = model
        self.recipe = recipe
        self.photos = {False: photo, True: ImageOps.mirror(photo)}
        self.latents = {False: latents}
        if recipe.hflip and not recipe.resize_augmentation:
            self.latents[True] = model.encode_image(self.photos[True])

    def draw(self, generator: torch.Generator) -> StepPhoto:
        flipped = self.recipe.hflip and torch.rand((), generator=generator).item() < 0.5
        if not self.recipe.resize_augmentation:
            return StepPhoto(latents=self.latents[flipped], flipped=flipped, valid=None, prefix="")
        resized = resize_augmentation(self.photos[flipped], self.model.latent_size[1], generator)
        latents = self.model.encode_pixels(resized.pixels)
        return StepPhoto(
            latents=latents, flipped=flipped, valid=resized.valid.to(latents.device), prefix=resized.prefix
        )
