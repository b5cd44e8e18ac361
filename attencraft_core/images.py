"""Image preparation and mask pictures."""

import numpy as np
import torch
from PIL import Image, ImageOps

from attencraft_core.errors import InvalidInputError

MASK_COLORS = ((230, 60, 60), (60, 120, 230), (60, 190, 90), (240, 190, 40), (170, 80, 200), (40, 200, 200))


def prepare_image(image: Image.Image, resolution: int) -> Image.Image:
    """RGB, EXIF orientation applied, shorter side scaled to the resolution, centre-cropped to a square."""
    upright = ImageOps.exif_transpose(image).convert("RGB")
    return ImageOps.fit(upright, (resolution, resolution), method=Image.Resampling.BICUBIC)


def masks_from_images(images: list[Image.Image], resolution: int, grid: tuple[int, int]) -> torch.Tensor:
    """User masks (white = concept, the input image's size) -> disjoint bool (N, H, W) masks on the grid.

    A pixel claimed by several masks is ambiguous and becomes background.
    """
    planes = []
    for image in images:
        fitted = ImageOps.fit(ImageOps.exif_transpose(image).convert("L"), (resolution, resolution))
        small = fitted.resize((grid[1], grid[0]), Image.Resampling.BOX)
        planes.append(torch.from_numpy(np.asarray(small, dtype=np.float32) / 255.0) > 0.5)
    masks = torch.stack(planes)
    claimed_once = masks.sum(dim=0, keepdim=True) == 1
    return masks & claimed_once


def mask_images(masks: torch.Tensor, resolution: int) -> list[Image.Image]:
    """bool (N, H, W) -> one 8-bit grayscale picture per mask at the model resolution (white = concept)."""
    return [
        Image.fromarray(mask.numpy().astype(np.uint8) * 255, mode="L").resize(
            (resolution, resolution), Image.Resampling.NEAREST
        )
        for mask in masks.cpu()
    ]


def mask_overlay(image: Image.Image, masks: torch.Tensor, opacity: float = 0.5) -> Image.Image:
    """The input image with each mask tinted in its own colour."""
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    for index, picture in enumerate(mask_images(masks, image.width)):
        covered = np.asarray(picture.resize(image.size), dtype=bool)[..., None]
        color = np.array(MASK_COLORS[index % len(MASK_COLORS)], dtype=np.float32)
        base = np.where(covered, (1 - opacity) * base + opacity * color, base)
    return Image.fromarray(base.round().astype(np.uint8))


def open_image(path: str) -> Image.Image:
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except FileNotFoundError as error:
        raise InvalidInputError(f"There is no file at {path}.") from error
    except (OSError, SyntaxError, Image.DecompressionBombError) as error:
        raise InvalidInputError(f"{path} is not a readable PNG, JPEG or WebP image.") from error
