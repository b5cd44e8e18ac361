"""A photo that is not square is cropped (centre) or padded, never stretched; its masks follow the same way."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

from attencraft_contract.models import ImageFit
from attencraft_core.images import masks_from_images, prepare_image

RESOLUTION = 64


def wide_photo_with_a_disc() -> Image.Image:
    """A 200x100 grey photo with a white disc of diameter 60 in its centre and red bands at both ends."""
    photo = Image.new("RGB", (200, 100), (128, 128, 128))
    draw = ImageDraw.Draw(photo)
    draw.ellipse((70, 20, 130, 80), fill=(255, 255, 255))
    draw.rectangle((0, 0, 19, 99), fill=(255, 0, 0))
    draw.rectangle((180, 0, 199, 99), fill=(255, 0, 0))
    return photo


def disc_extent(image: Image.Image) -> tuple[int, int]:
    """Width and height of the white disc."""
    white = np.asarray(image.convert("RGB")).min(axis=-1) > 200
    rows, columns = np.nonzero(white)
    return columns.max() - columns.min() + 1, rows.max() - rows.min() + 1


@pytest.mark.parametrize("fit", list(ImageFit))
def test_the_disc_stays_round(fit: ImageFit) -> None:
    prepared = prepare_image(wide_photo_with_a_disc(), RESOLUTION, fit)
    assert prepared.size == (RESOLUTION, RESOLUTION)
    width, height = disc_extent(prepared)
    assert abs(width - height) <= 1


def red(pixels: np.ndarray) -> np.ndarray:
    return (pixels[..., 0] > 200) & (pixels[..., 1] < 60)


def test_crop_keeps_the_centre_and_pad_keeps_everything() -> None:
    cropped = np.asarray(prepare_image(wide_photo_with_a_disc(), RESOLUTION, ImageFit.CROP))
    padded = np.asarray(prepare_image(wide_photo_with_a_disc(), RESOLUTION, ImageFit.PAD))
    assert not red(cropped).any()  # the red ends lie outside the centre square
    assert red(padded[RESOLUTION // 2, :3]).all() and red(padded[RESOLUTION // 2, -3:]).all()
    assert disc_extent(Image.fromarray(padded))[0] < disc_extent(Image.fromarray(cropped))[0]  # scaled by the long side


def test_a_mask_is_padded_as_its_photo_with_background() -> None:
    mask = Image.new("L", (200, 100), 255)
    masks = masks_from_images([mask, Image.new("L", (200, 100), 0)], RESOLUTION, (16, 16), ImageFit.PAD)
    covered = masks[0].float().mean().item()
    assert 0.45 < covered < 0.55  # the padding above and below the photo is background
