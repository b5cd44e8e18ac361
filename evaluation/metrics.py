"""The paper's measures (Sec. IV-A), each a plain function on embeddings or images.

CLIP-I and DINO: cosine similarity of generated and reference image embeddings. CLIP-T: of a generated image and
its prompt without placeholders. CLIP-I-sync: absolute difference of the single-concept CLIP-I scores of the
concepts of one image (with more than two concepts, the largest difference). References: for a single-concept
prompt the input cropped to that concept's mask box, for the group prompt the whole input.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Protocol

import numpy as np
import torch
from PIL import Image

from attencraft_contract.rules import PLACEHOLDER
from evaluation.errors import EvaluationError


class ImageEncoder(Protocol):
    def images(self, images: Sequence[Image.Image]) -> torch.Tensor: ...


class ImageTextEncoder(ImageEncoder, Protocol):
    def texts(self, texts: Sequence[str]) -> torch.Tensor: ...


def image_similarity(generated: torch.Tensor, reference: torch.Tensor) -> float:
    """CLIP-I / DINO: mean cosine similarity of (B, D) generated embeddings to one (D,) reference embedding."""
    generated = torch.nn.functional.normalize(generated.float(), dim=-1)
    reference = torch.nn.functional.normalize(reference.float().reshape(-1), dim=0)
    return float((generated @ reference).mean())


def text_similarity(images: torch.Tensor, texts: torch.Tensor) -> float:
    """CLIP-T: mean cosine similarity of each (B, D) image embedding to its own (B, D) prompt embedding."""
    images = torch.nn.functional.normalize(images.float(), dim=-1)
    texts = torch.nn.functional.normalize(texts.float(), dim=-1)
    return float((images * texts).sum(-1).mean())


def synchronicity_gap(scores: Sequence[float]) -> float:
    """CLIP-I-sync: |s_1 - s_2| of the concepts of one image; the largest pairwise difference for more."""
    return max(scores) - min(scores)


def plain_prompt(prompt: str) -> str:
    """The prompt as CLIP reads it: "<cat> on the beach" -> "cat on the beach"."""
    return PLACEHOLDER.sub(lambda match: match.group(0)[1:-1], prompt)


def mask_box(mask: Image.Image) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of a mask's white pixels, right and bottom exclusive."""
    covered = np.asarray(mask.convert("L")) >= 128
    if not covered.any():
        raise EvaluationError("A concept's mask is empty, so it has no box to crop the reference to.")
    rows = np.flatnonzero(covered.any(axis=1))
    columns = np.flatnonzero(covered.any(axis=0))
    return int(columns[0]), int(rows[0]), int(columns[-1]) + 1, int(rows[-1]) + 1


def single_concept_reference(image: Image.Image, mask: Image.Image) -> Image.Image:
    """The input cropped to the box of the concept's mask (the mask is scaled to the image first)."""
    return image.crop(mask_box(mask.convert("L").resize(image.size, Image.Resampling.NEAREST)))


@dataclass(frozen=True)
class Sample:
    """A generated image and what it was asked to show: one concept (its name) or the group (None)."""

    prompt: str
    concept: str | None
    image: Image.Image


def paper_figures(
    samples: Sequence[Sample],
    image: Image.Image,
    masks: dict[str, Image.Image],
    *,
    clip: ImageTextEncoder | None,
    dino: ImageEncoder | None,
) -> dict[str, object]:
    """Per-concept and group CLIP-I, CLIP-T and DINO of a cell's samples, and their summary figures.

    An encoder given as None skips its measures. Every image is embedded in batches, each reference once.
    """
    concepts = list(masks)
    references = [single_concept_reference(image, masks[concept]) for concept in concepts] + [image]
    groups = [[i for i, s in enumerate(samples) if s.concept == concept] for concept in [*concepts, None]]
    if any(not indices for indices in groups):
        raise EvaluationError("Every concept and the group need at least one generated image to be scored.")
    pictures = [sample.image for sample in samples]
    embeddings: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    if clip is not None:
        embeddings["clip_i"] = (clip.images(pictures), clip.images(references))
        text = clip.texts([plain_prompt(sample.prompt) for sample in samples])
    if dino is not None:
        embeddings["dino"] = (dino.images(pictures), dino.images(references))

    scopes: dict[str, dict[str, float]] = {}
    for scope, indices, reference in zip([*concepts, "group"], groups, range(len(references)), strict=True):
        figures = {
            name: image_similarity(generated[indices], refs[reference])
            for name, (generated, refs) in embeddings.items()
        }
        if clip is not None:
            figures["clip_t"] = text_similarity(embeddings["clip_i"][0][indices], text[indices])
        scopes[scope] = figures

    summary: dict[str, float] = {}
    for name in embeddings.keys() | ({"clip_t"} if clip is not None else set()):
        summary[f"{name}_single"] = fmean(scopes[concept][name] for concept in concepts)
        summary[f"{name}_group"] = scopes["group"][name]
    if clip is not None:
        summary["clip_i_sync"] = synchronicity_gap([scopes[concept]["clip_i"] for concept in concepts])
    return {"metrics": summary, "per_concept": {c: scopes[c] for c in concepts}, "group": scopes["group"]}
