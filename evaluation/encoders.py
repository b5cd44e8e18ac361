"""The image and text encoders behind the paper's measures (Sec. IV-A): CLIP ViT-L/14 and DINOv2 ViT-B.

Each is a setting (a hub id or a local folder holding the model, its image processor and, for CLIP, its
tokenizer); the defaults are the paper's. An encoder is loaded once per process and embeds in batches.
"""

from collections.abc import Sequence
from functools import cache

import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel, Dinov2Model

from evaluation.errors import EvaluationError

BATCH_SIZE = 16


def _loaded(source: str, what: str, load: type) -> object:
    try:
        return load.from_pretrained(source)
    except (OSError, ValueError) as error:
        raise EvaluationError(
            f"Cannot load the {what} {source!r} (a hub id or a local folder): {str(error).splitlines()[0]}"
        ) from error


def _rgb(images: Sequence[Image.Image]) -> list[Image.Image]:
    return [image.convert("RGB") for image in images]


def _unit(vectors: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(vectors.float(), dim=-1)


class ClipEncoder:
    """CLIP's image tower (vision model + visual projection) and text tower (text model + text projection)."""

    def __init__(self, source: str, device: torch.device) -> None:
        self.source = source
        self.device = device
        self.model = _loaded(source, "CLIP encoder", CLIPModel).eval().to(device)
        self.processor = _loaded(source, "CLIP image processor", AutoImageProcessor)
        self.tokenizer = _loaded(source, "CLIP tokenizer", AutoTokenizer)

    @torch.no_grad()
    def images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """B images -> (B, D) unit vectors."""
        vectors = []
        for start in range(0, len(images), BATCH_SIZE):
            batch = self.processor(images=_rgb(images[start : start + BATCH_SIZE]), return_tensors="pt")
            pooled = self.model.vision_model(pixel_values=batch["pixel_values"].to(self.device)).pooler_output
            vectors.append(self.model.visual_projection(pooled))
        return _unit(torch.cat(vectors)).cpu()

    @torch.no_grad()
    def texts(self, texts: Sequence[str]) -> torch.Tensor:
        """B prompts -> (B, D) unit vectors."""
        vectors = []
        for start in range(0, len(texts), BATCH_SIZE):
            tokens = self.tokenizer(
                list(texts[start : start + BATCH_SIZE]), padding=True, truncation=True, return_tensors="pt"
            ).to(self.device)
            pooled = self.model.text_model(**tokens).pooler_output
            vectors.append(self.model.text_projection(pooled))
        return _unit(torch.cat(vectors)).cpu()


class DinoEncoder:
    """DINOv2's pooled output (the layer-normed class token)."""

    def __init__(self, source: str, device: torch.device) -> None:
        self.source = source
        self.device = device
        self.model = _loaded(source, "DINOv2 encoder", Dinov2Model).eval().to(device)
        self.processor = _loaded(source, "DINOv2 image processor", AutoImageProcessor)

    @torch.no_grad()
    def images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """B images -> (B, D) unit vectors."""
        vectors = []
        for start in range(0, len(images), BATCH_SIZE):
            batch = self.processor(images=_rgb(images[start : start + BATCH_SIZE]), return_tensors="pt")
            vectors.append(self.model(pixel_values=batch["pixel_values"].to(self.device)).pooler_output)
        return _unit(torch.cat(vectors)).cpu()


@cache
def clip_encoder(source: str, device: str = "cpu") -> ClipEncoder:
    return ClipEncoder(source, torch.device(device))


@cache
def dino_encoder(source: str, device: str = "cpu") -> DinoEncoder:
    return DinoEncoder(source, torch.device(device))
