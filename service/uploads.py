"""Validation of what a client uploads: image files, concept names, options, webhook URLs."""

import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image
from pydantic import BaseModel, HttpUrl, ValidationError

from service.errors import PayloadTooLarge, UnsupportedMediaType, ValidationProblem
from service.schemas import JobOptions
from service.webhooks import TargetPolicy, WebhookHostUnresolved, WebhookTargetRefused, check_target

ALLOWED_IMAGE_FORMATS = {"PNG": ("image/png", "png"), "JPEG": ("image/jpeg", "jpg"), "WEBP": ("image/webp", "webp")}
PLAIN_WORD = re.compile(r"[a-z0-9_-]{1,32}")
MAX_WEBHOOK_URL_LENGTH = 2048


@dataclass(frozen=True)
class CheckedImage:
    image: Image.Image
    content_type: str
    extension: str


def _problem(field: str, detail: str, *, code: str) -> ValidationProblem:
    return ValidationProblem(detail, code=code, errors=[{"field": field, "message": detail}])


def _stream_size(stream: BinaryIO) -> int:
    size = stream.seek(0, io.SEEK_END)
    stream.seek(0)
    return size


def check_image(stream: BinaryIO, field: str, *, max_bytes: int, max_pixels: int) -> CheckedImage:
    """Open, verify and decode an uploaded PNG, JPEG or WebP within the byte and pixel limits."""
    size = _stream_size(stream)
    if size > max_bytes:
        raise PayloadTooLarge(
            f"{field}: the file is {size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.1f} MB.", code="file_too_large"
        )
    if size == 0:
        raise _problem(field, f"{field}: the file is empty.", code="empty_file")
    try:
        image = Image.open(stream)
    except Image.UnidentifiedImageError as exc:
        raise UnsupportedMediaType(
            f"{field}: the file is not an image; upload a PNG, JPEG or WebP.", code="not_an_image"
        ) from exc
    except Image.DecompressionBombError as exc:
        raise _problem(field, f"{field}: the image has too many pixels.", code="image_too_large") from exc
    if image.format not in ALLOWED_IMAGE_FORMATS:
        raise UnsupportedMediaType(
            f"{field}: {image.format} images are not supported; upload a PNG, JPEG or WebP.",
            code="unsupported_image_type",
        )
    width, height = image.size
    if width * height > max_pixels:  # checked before decoding: the decompression-bomb guard
        raise _problem(
            field,
            f"{field}: the image is {width}x{height} pixels; the limit is {max_pixels / 1e6:.0f} megapixels.",
            code="image_too_large",
        )
    try:
        image.verify()
        stream.seek(0)
        image = Image.open(stream)
        image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise _problem(
            field, f"{field}: the image is truncated or corrupt and cannot be decoded.", code="corrupt_image"
        ) from exc
    stream.seek(0)
    content_type, extension = ALLOWED_IMAGE_FORMATS[image.format]
    return CheckedImage(image=image, content_type=content_type, extension=extension)


def parse_concept_names(raw_names: Sequence[str], *, max_concepts: int) -> list[str]:
    names = [raw.strip().lower() for raw in raw_names]
    if not 2 <= len(names) <= max_concepts:
        raise _problem(
            "concepts",
            f"Send between 2 and {max_concepts} concepts (repeat the `concepts` field); got {len(names)}.",
            code="concept_count",
        )
    for index, name in enumerate(names):
        if not name:
            raise _problem(f"concepts.{index}", f"Concept {index + 1} has an empty name.", code="empty_concept_name")
        if not PLAIN_WORD.fullmatch(name):
            raise _problem(
                f"concepts.{index}",
                f"Concept name {raw_names[index]!r} is not a plain word: use 1 to 32 letters, digits, '_' or '-'.",
                code="invalid_concept_name",
            )
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise _problem(
            "concepts", f"Concept names must differ; repeated: {', '.join(duplicates)}.", code="duplicate_concept_name"
        )
    return names


def parse_initializers(raw_initializers: Sequence[str], *, concept_count: int) -> list[str | None]:
    """One initializer word per concept, or none at all; an empty string keeps the class name."""
    if not raw_initializers:
        return [None] * concept_count
    if len(raw_initializers) != concept_count:
        raise _problem(
            "initializers",
            f"Send one initializer per concept ({concept_count}) or none; got {len(raw_initializers)}.",
            code="initializer_count",
        )
    initializers: list[str | None] = []
    for index, raw in enumerate(raw_initializers):
        word = raw.strip().lower()
        if word and not PLAIN_WORD.fullmatch(word):
            raise _problem(
                f"initializers.{index}",
                f"Initializer {raw!r} is not a plain word: use 1 to 32 letters, digits, '_' or '-'.",
                code="invalid_initializer",
            )
        initializers.append(word or None)
    return initializers


def parse_options(raw_options: str | None) -> JobOptions:
    """The ``options`` form field: a JSON object such as {"steps": 300, "seed": 7}."""
    if raw_options is None or not raw_options.strip():
        return JobOptions()
    try:
        decoded = json.loads(raw_options)
    except json.JSONDecodeError as exc:
        raise _problem("options", f"options must be a JSON object: {exc.msg}.", code="invalid_options") from exc
    if not isinstance(decoded, dict):
        raise _problem("options", 'options must be a JSON object, e.g. {"steps": 300}.', code="invalid_options")
    try:
        return JobOptions.model_validate(decoded)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(["options", *map(str, error["loc"])]), "message": error["msg"]} for error in exc.errors()
        ]
        summary = "; ".join(f"{error['field']}: {error['message']}" for error in errors)
        raise ValidationProblem(f"Invalid options: {summary}.", code="invalid_options", errors=errors) from exc


class _WebhookTarget(BaseModel):
    url: HttpUrl


def parse_webhook_url(raw_url: str | None) -> str | None:
    if raw_url is None or not raw_url.strip():
        return None
    if len(raw_url) > MAX_WEBHOOK_URL_LENGTH:
        raise _problem(
            "webhook_url", f"webhook_url is longer than {MAX_WEBHOOK_URL_LENGTH} characters.", code="invalid_webhook"
        )
    try:
        return str(_WebhookTarget(url=raw_url.strip()).url)
    except ValidationError as exc:
        raise _problem(
            "webhook_url",
            f"webhook_url {raw_url!r} is not an absolute http(s) URL such as https://example.com/hooks.",
            code="invalid_webhook",
        ) from exc


def check_webhook_target(url: str, policy: TargetPolicy) -> None:
    """Refuse a URL that resolves to an address webhooks must not reach; an unresolvable host may resolve later."""
    try:
        check_target(url, policy)
    except WebhookHostUnresolved:
        return
    except WebhookTargetRefused as exc:
        raise _problem("webhook_url", f"webhook_url is refused: {exc}", code="webhook_target_refused") from exc


def check_masks(masks: Sequence[CheckedImage], *, concept_count: int, image_size: tuple[int, int]) -> None:
    if len(masks) != concept_count:
        raise _problem(
            "masks", f"Send one mask per concept ({concept_count}) or none; got {len(masks)}.", code="mask_count"
        )
    for index, mask in enumerate(masks):
        if mask.image.size != image_size:
            raise _problem(
                f"masks.{index}",
                f"Mask {index + 1} is {mask.image.width}x{mask.image.height} pixels; "
                f"it must match the image, {image_size[0]}x{image_size[1]}.",
                code="mask_size_mismatch",
            )


def mask_as_png(mask: CheckedImage) -> io.BytesIO:
    """A mask as an 8-bit grayscale PNG (white = concept)."""
    buffer = io.BytesIO()
    mask.image.convert("L").save(buffer, format="PNG")
    buffer.seek(0)
    return buffer
