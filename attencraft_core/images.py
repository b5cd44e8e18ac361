"""Image preparation and mask pictures."""

import numpy as np
import torch
from PIL import Image, ImageOps, ImageStat

from attencraft_contract.models import ImageFit
from attencraft_core.errors import InvalidInputError

MASK_COLORS = ((230, 60, 60), (60, 120, 230), (60, 190, 90), (240, 190, 40), (170, 80, 200), (40, 200, 200))


def to_square(image: Image.Image, resolution: int, fit: ImageFit, fill: int | tuple[int, ...]) -> Image.Image:
    """Never stretched: `crop` scales the shorter side to the resolution and keeps the centre; `pad` scales the
    longer side and fills the rest with ``fill``."""
    size = (resolution, resolution)
    if fit == ImageFit.PAD:
        return ImageOps.pad(image, size, method=Image.Resampling.BICUBIC, color=fill)
    return ImageOps.fit(image, size, method=Image.Resampling.BICUBIC)


def prepare_image(image: Image.Image, resolution: int, fit: ImageFit = ImageFit.CROP) -> Image.Image:
    """RGB, EXIF orientation applied, made square at the resolution (padding takes the photo's mean colour)."""
    upright = ImageOps.exif_transpose(image).convert("RGB")
    mean_colour = tuple(round(channel) for channel in ImageStat.Stat(upright).mean)
    return to_square(upright, resolution, fit, mean_colour)


def masks_from_images(
    images: list[Image.Image], resolution: int, grid: tuple[int, int], fit: ImageFit = ImageFit.CROP
) -> torch.Tensor:
    """User masks (white = concept, the input image's size) -> disjoint bool (N, H, W) masks on the grid, made
    square the way the photo was (padding is background).

    A pixel claimed by several masks is ambiguous and becomes background.
    """
    planes = []
    for image in images:
        fitted = to_square(ImageOps.exif_transpose(image).convert("L"), resolution, fit, 0)
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


def heatmap_images(maps: torch.Tensor, resolution: int) -> list[Image.Image]:
    """(N, H, W) maps in [0, 1] -> one 8-bit grayscale picture per map at the model resolution (white = strongest)."""
    return [
        Image.fromarray((m.numpy() * 255).round().astype(np.uint8), mode="L").resize(
            (resolution, resolution), Image.Resampling.BILINEAR
        )
        for m in maps.float().clamp(0, 1).cpu()
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
