"""Build ``POST /jobs`` multipart requests from small in-memory images."""

import io
import json
from typing import Any

from fastapi.testclient import TestClient
from PIL import Image
from tokenizers import Tokenizer, models, pre_tokenizers, processors

PROBLEM_JSON = "application/problem+json"
TEXT_ENCODER_LIMIT = 77


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (64, 48), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color=(200, 120, 40) if mode == "RGB" else 1).save(buffer, format=fmt)
    return buffer.getvalue()


def half_mask_bytes(size: tuple[int, int], *, left: bool) -> bytes:
    mask = Image.new("L", size, 0)
    mask.paste(255, (0, 0, size[0] // 2, size[1]) if left else (size[0] // 2, 0, size[0], size[1]))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    return buffer.getvalue()


def post_job(
    client: TestClient,
    *,
    image: bytes | None = None,
    image_name: str = "photo.png",
    concepts: list[str] | None = None,
    masks: list[bytes] | None = None,
    initializers: list[str] | None = None,
    options: dict[str, Any] | str | None = None,
    webhook_url: str | None = None,
) -> Any:
    files: list[tuple[str, tuple[str, bytes, str]]] = [
        ("image", (image_name, image_bytes() if image is None else image, "application/octet-stream"))
    ]
    files += [("masks", (f"mask{index}.png", mask, "image/png")) for index, mask in enumerate(masks or [])]
    data: dict[str, Any] = {"concepts": ["cat", "dog"] if concepts is None else concepts}
    if initializers is not None:
        data["initializers"] = initializers
    if options is not None:
        data["options"] = options if isinstance(options, str) else json.dumps(options)
    if webhook_url is not None:
        data["webhook_url"] = webhook_url
    return client.post("/jobs", data=data, files=files)


def assert_problem(response: Any, status: int, *detail_fragments: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    problem = response.json()
    assert problem["status"] == status
    assert problem["title"] and problem["code"] and problem["type"]
    for fragment in detail_fragments:
        assert fragment.lower() in problem["detail"].lower(), problem["detail"]
    return problem


def word_tokenizer() -> bytes:
    """A CLIP-like tokenizer: one token per word, start and end tokens, the limit stored as truncation."""
    specials = {"<|startoftext|>": 0, "<|endoftext|>": 1, "[UNK]": 2}
    tokenizer = Tokenizer(models.WordLevel(specials, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>", special_tokens=[("<|startoftext|>", 0), ("<|endoftext|>", 1)]
    )
    tokenizer.enable_truncation(TEXT_ENCODER_LIMIT)
    return tokenizer.to_str().encode()
