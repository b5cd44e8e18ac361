"""Rules for uploaded photos and masks (formats, bytes, pixels, mask size and colour), decoded with Pillow.

The client never imports this module: it needs Pillow, which the client does not depend on.
"""

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import Image

from attencraft_contract.errors import InputError, InputTooLarge, UnsupportedInput

ALLOWED_IMAGE_FORMATS = {"PNG": ("image/png", "png"), "JPEG": ("image/jpeg", "jpg"), "WEBP": ("image/webp", "webp")}
MASK_MODES = ("1", "L")  # one channel: white is the concept


@dataclass(frozen=True)
class CheckedImage:
    image: Image.Image
    content_type: str
    extension: str


def _stream_size(stream: BinaryIO) -> int:
    size = stream.seek(0, io.SEEK_END)
    stream.seek(0)
    return size


def check_image(stream: BinaryIO, field: str, *, max_bytes: int, max_pixels: int, label: str = "") -> CheckedImage:
    """Open, verify and decode a PNG, JPEG or WebP within the byte and pixel limits.

    ``label`` names the file in sentences (a path on the command line); by default the field.
    """
    label = label or field
    size = _stream_size(stream)
    if size > max_bytes:
        raise InputTooLarge(
            f"{label}: the file is {size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.1f} MB.",
            code="file_too_large",
            field=field,
        )
    if size == 0:
        raise InputError(f"{label}: the file is empty.", code="empty_file", field=field)
    try:
        image = Image.open(stream)
    except Image.UnidentifiedImageError as exc:
        raise UnsupportedInput(
            f"{label}: the file is not an image; use a PNG, JPEG or WebP.", code="not_an_image", field=field
        ) from exc
    except Image.DecompressionBombError as exc:
        raise InputError(f"{label}: the image has too many pixels.", code="image_too_large", field=field) from exc
    if image.format not in ALLOWED_IMAGE_FORMATS:
        raise UnsupportedInput(
            f"{label}: {image.format} images are not supported; use a PNG, JPEG or WebP.",
            code="unsupported_image_type",
            field=field,
        )
    width, height = image.size
    if width * height > max_pixels:  # checked before decoding: the decompression-bomb guard
        raise InputError(
            f"{label}: the image is {width}x{height} pixels; the limit is {max_pixels / 1e6:.0f} megapixels.",
            code="image_too_large",
            field=field,
        )
    try:
        image.verify()
        stream.seek(0)
        image = Image.open(stream)
        image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(
            f"{label}: the image is truncated or corrupt and cannot be decoded.", code="corrupt_image", field=field
        ) from exc
    stream.seek(0)
    content_type, extension = ALLOWED_IMAGE_FORMATS[image.format]
    return CheckedImage(image=image, content_type=content_type, extension=extension)


def check_image_file(path: Path, field: str, *, max_bytes: int, max_pixels: int) -> CheckedImage:
    """check_image for a file on disk, named by its path."""
    if not path.is_file():
        raise InputError(f"There is no file at {path}.", code="missing_file", field=field)
    with path.open("rb") as stream:
        return check_image(
            io.BytesIO(stream.read()), field, max_bytes=max_bytes, max_pixels=max_pixels, label=str(path)
        )


def check_masks(masks: Sequence[CheckedImage], *, concept_count: int, image_size: tuple[int, int]) -> None:
    """One grayscale mask per concept, the photo's size, with some white (the concept) in it."""
    if len(masks) != concept_count:
        raise InputError(
            f"Give one mask per concept ({concept_count}) or none; got {len(masks)}.", code="mask_count", field="masks"
        )
    for index, mask in enumerate(masks):
        field = f"masks.{index}"
        if mask.image.size != image_size:
            raise InputError(
                f"Mask {index + 1} is {mask.image.width}x{mask.image.height} pixels; "
                f"it must match the photo, {image_size[0]}x{image_size[1]}.",
                code="mask_size_mismatch",
                field=field,
            )
        if mask.image.mode not in MASK_MODES:
            raise InputError(
                f"Mask {index + 1} is a colour ({mask.image.mode}) image; a mask is grayscale: white where the "
                "concept is, black elsewhere.",
                code="mask_not_grayscale",
                field=field,
            )
        if mask.image.convert("L").point(lambda value: 255 if value > 127 else 0).getbbox() is None:
            raise InputError(f"Mask {index + 1} is all black; paint the concept white.", code="empty_mask", field=field)


def mask_as_png(mask: CheckedImage) -> io.BytesIO:
    """A mask as an 8-bit grayscale PNG (white = concept)."""
    buffer = io.BytesIO()
    mask.image.convert("L").save(buffer, format="PNG")
    buffer.seek(0)
    return buffer
