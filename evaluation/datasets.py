"""What an evaluation runs on: images with two or more named concepts and, where known, their true masks.

A folder dataset is a folder of image folders (like ../shared/datasets/: `cat_dog/image.jpg`) or of image files
(`cat_dog.png`); an image folder itself (one holding `image.*` or a manifest) is a dataset of one. Concept names
come from a `manifest.json` (`{"concepts": ["dog", "bear"], "masks": {"bear": "mask0.png", "dog": "mask1.png"}}`,
in the image's folder or, keyed by the image's name, in a manifest given to `--manifest`), else from the name
split at `_`. Masks are `mask_<concept>.png` next to the image unless the manifest names them.
"""

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from attencraft_contract import rules
from attencraft_contract.errors import InputError
from attencraft_contract.images import check_image_file, check_masks
from attencraft_contract.limits import DEFAULT_MAX_IMAGE_PIXELS, DEFAULT_MAX_UPLOAD_BYTES
from evaluation.errors import EvaluationError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
MANIFEST_FILE = "manifest.json"
LIMITS = {"max_bytes": DEFAULT_MAX_UPLOAD_BYTES, "max_pixels": DEFAULT_MAX_IMAGE_PIXELS}


@dataclass(frozen=True)
class EvalImage:
    """One input of the grid: its name, picture, concept names, true masks (name -> L image) if known, and for
    a toy scene the world's ground truth."""

    name: str
    image: Image.Image
    concepts: list[str]
    masks: dict[str, Image.Image] = field(default_factory=dict)
    truth: Any = None

    def digest(self) -> str:
        """SHA-256 of the pixels, concepts and masks: what a cell's cached figures depend on."""
        digest = hashlib.sha256(json.dumps(self.concepts).encode())
        for picture in [self.image, *self.masks.values()]:
            buffer = io.BytesIO()
            picture.save(buffer, format="PNG")
            digest.update(buffer.getvalue())
        return digest.hexdigest()


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.stem.lower().startswith("mask")


def _holds_an_image(path: Path) -> bool:
    return path.is_dir() and any(map(_is_image, path.iterdir()))


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise EvaluationError(f"Cannot read the manifest {path}: {error}.") from error
    if not isinstance(manifest, dict):
        raise EvaluationError(f"The manifest {path} must be a JSON object.")
    return manifest


def _entry_manifest(entry: Path, shared: dict[str, Any]) -> dict[str, Any]:
    own = entry / MANIFEST_FILE
    if own.is_file():
        return _read_manifest(own)
    described = shared.get(entry.stem if entry.is_file() else entry.name, {})
    if not isinstance(described, dict):
        raise EvaluationError(f"The manifest's entry for {entry.name} must be a JSON object.")
    return described


def _concepts(entry: Path, manifest: dict[str, Any]) -> list[str]:
    raw = manifest.get("concepts") or (entry.stem if entry.is_file() else entry.name).split("_")
    try:
        return rules.concept_names([str(name) for name in raw])
    except InputError as error:
        raise EvaluationError(
            f"{entry} has no usable concept names ({error}); name it like cat_dog or give them in {MANIFEST_FILE}."
        ) from error


def _image_of(folder: Path) -> Path:
    images = sorted(path for path in folder.iterdir() if _is_image(path))
    if len(images) != 1:
        found = ", ".join(path.name for path in images) or "none"
        raise EvaluationError(f"{folder} must hold exactly one image besides its masks (found: {found}).")
    return images[0]


def _masks(entry: Path, concepts: list[str], manifest: dict[str, Any], size: tuple[int, int]) -> dict[str, Image.Image]:
    folder = entry.parent if entry.is_file() else entry
    named = manifest.get("masks") or {}
    paths = {name: folder / named.get(name, f"mask_{name}.png") for name in concepts}
    present = {name: path for name, path in paths.items() if path.is_file()}
    if not present and not named:
        return {}
    if len(present) != len(concepts):
        missing = ", ".join(str(path) for name, path in paths.items() if name not in present)
        raise EvaluationError(f"{entry} has masks for some concepts but not for all: {missing} is missing.")
    checked = [check_image_file(path, f"mask of {name}", **LIMITS) for name, path in present.items()]
    try:
        check_masks(checked, concept_count=len(concepts), image_size=size)
    except InputError as error:
        raise EvaluationError(f"{entry}: {error}") from error
    return {name: mask.image.convert("L") for name, mask in zip(concepts, checked, strict=True)}


def load_entry(entry: Path, shared_manifest: dict[str, Any]) -> EvalImage:
    manifest = _entry_manifest(entry, shared_manifest)
    concepts = _concepts(entry, manifest)
    path = entry if entry.is_file() else _image_of(entry)
    try:
        image = check_image_file(path, "image", **LIMITS).image.convert("RGB")
    except InputError as error:
        raise EvaluationError(str(error)) from error
    name = entry.stem if entry.is_file() else entry.name
    return EvalImage(name, image, concepts, _masks(entry, concepts, manifest, image.size))


def toy_dataset(scenes: int) -> list[EvalImage]:
    """The toy world's held-out two-object scenes 0..N-1, with their exact masks and objects (the ground truth)."""
    from toyworld.scenes import held_out_scene

    images = []
    for seed in range(scenes):
        scene = held_out_scene(seed)
        concepts = [obj.class_name for obj in scene.objects]
        masks = {
            name: Image.fromarray(mask.astype(np.uint8) * 255, mode="L")
            for name, mask in zip(concepts, scene.masks, strict=True)
        }
        images.append(EvalImage(f"scene{seed}", Image.fromarray(scene.image, mode="RGB"), concepts, masks, scene))
    return images


def folder_dataset(root: Path, manifest: Path | None = None) -> list[EvalImage]:
    """Every image of a dataset folder, in name order."""
    if not root.is_dir():
        raise EvaluationError(f"The dataset {root} is neither `toy` nor a folder.")
    shared = _read_manifest(manifest) if manifest is not None else {}
    if (root / MANIFEST_FILE).is_file() or any(path.stem == "image" and _is_image(path) for path in root.iterdir()):
        entries = [root]  # the folder of one image
    else:
        entries = sorted(path for path in root.iterdir() if _is_image(path) or _holds_an_image(path))
    if not entries:
        raise EvaluationError(f"The dataset {root} holds no images ({', '.join(IMAGE_SUFFIXES)} files or folders).")
    return [load_entry(entry, shared) for entry in entries]
