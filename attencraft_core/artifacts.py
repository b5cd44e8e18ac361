"""A learned concept set and its files (SPEC 2.6): safetensors for tensors, JSON for metadata, PNG for masks."""

import csv
import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from attencraft_contract.methods import PromptExpansion
from attencraft_core.errors import InvalidInputError
from attencraft_core.images import mask_images, mask_overlay
from attencraft_core.models import ConceptWeights
from attencraft_core.training import StepRecord

WEIGHTS_FILE = "weights.safetensors"
METADATA_FILE = "metadata.json"
OVERLAY_FILE = "overlay.png"
LOSS_CURVE_FILE = "loss_curve.csv"
FORMAT_VERSION = 1


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def low_rank(delta: torch.Tensor, energy: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Truncated SVD keeping singular values up to `energy` of their cumulative sum (Custom Diffusion's recipe).

    delta: (out, in) -> up (out, k), down (k, in) with up @ down ≈ delta.
    """
    u, s, vh = torch.linalg.svd(delta.float(), full_matrices=False)
    cumulative = s.cumsum(0) / s.sum().clamp_min(1e-12)
    rank = int((cumulative < energy).sum()) + 1
    return u[:, :rank] * s[:rank], vh[:rank]


@dataclass
class ConceptSet:
    placeholders: list[str]  # what users type, e.g. "<cat>"
    class_names: list[str]
    initializers: list[str]
    token_strings: list[str]  # the internal identifier tokens used in training
    embeddings: torch.Tensor  # (N, D)
    deltas: dict[str, tuple[torch.Tensor, torch.Tensor]]  # layer -> (ΔW_k, ΔW_v)
    masks: torch.Tensor | None  # bool (N, H, W) on the self-attention grid; None for a method that uses none
    scores: list[float]
    ratios: list[float]
    metadata: dict[str, Any]
    history: list[StepRecord] = field(default_factory=list)
    image: Image.Image | None = None  # the prepared input, for the overlay
    factors: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None  # low-rank (up, down) per delta, if compressed

    def weights(self) -> ConceptWeights:
        return ConceptWeights(
            placeholders=self.placeholders,
            embeddings=self.embeddings,
            deltas=self.deltas,
            base_fingerprint=self.metadata["base_model"]["fingerprint"],
            base_model=self.metadata["base_model"]["name"],
            class_names=self.class_names,
            prompt_expansion=PromptExpansion(self.metadata.get("prompt_expansion", PromptExpansion.TOKEN)),
        )

    def compressed(self, energy: float = 0.6) -> "ConceptSet":
        """Each ΔW replaced by its truncated SVD; the relative Frobenius reconstruction error is reported."""
        factors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        deltas: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        errors: list[float] = []
        ranks: list[int] = []
        for layer, pair in self.deltas.items():
            approximations = []
            for suffix, delta in zip(("to_k", "to_v"), pair, strict=True):
                up, down = low_rank(delta, energy)
                approximation = up @ down
                factors[f"{layer}.{suffix}"] = (up, down)
                approximations.append(approximation)
                errors.append(float((delta - approximation).norm() / delta.norm().clamp_min(1e-12)))
                ranks.append(up.shape[1])
            deltas[layer] = (approximations[0], approximations[1])
        report = {
            "energy": energy,
            "relative_error_mean": sum(errors) / len(errors),
            "relative_error_max": max(errors),
            "rank_mean": sum(ranks) / len(ranks),
            "rank_max": max(ranks),
        }
        return replace(self, deltas=deltas, factors=factors, metadata={**self.metadata, "compression": report})

    def save(self, directory: Path) -> dict[str, Path]:
        """Write the artifact files; returns logical name -> path."""
        directory.mkdir(parents=True, exist_ok=True)
        tensors: dict[str, torch.Tensor] = {"embeddings": self.embeddings.float().contiguous()}
        if self.masks is not None:
            tensors["masks"] = self.masks.to(torch.uint8).contiguous()
        if self.factors is None:
            for layer, (delta_k, delta_v) in self.deltas.items():
                tensors[f"{layer}.to_k.delta"] = delta_k.float().contiguous()
                tensors[f"{layer}.to_v.delta"] = delta_v.float().contiguous()
        else:
            for key, (up, down) in self.factors.items():
                tensors[f"{key}.delta.up"] = up.float().contiguous()
                tensors[f"{key}.delta.down"] = down.float().contiguous()
        paths = {"weights": directory / WEIGHTS_FILE}
        save_file(tensors, str(paths["weights"]))

        resolution = self.image.width if self.image is not None else self.metadata["resolution"]
        if self.masks is not None:
            for index, picture in enumerate(mask_images(self.masks, resolution)):
                paths[f"mask_{index}"] = directory / f"mask_{index}_{self.class_names[index]}.png"
                picture.save(paths[f"mask_{index}"])
            if self.image is not None:
                paths["overlay"] = directory / OVERLAY_FILE
                mask_overlay(self.image, self.masks).save(paths["overlay"])
        paths["loss_curve"] = directory / LOSS_CURVE_FILE
        with paths["loss_curve"].open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["step", "subset", "timestep", "loss", "reconstruction", "attention"])
            for r in self.history:
                subset = "+".join(self.class_names[i] for i in r.subset)
                writer.writerow([r.step, subset, r.timestep, r.loss, r.reconstruction, r.attention])

        metadata = {
            **self.metadata,
            "format_version": FORMAT_VERSION,
            "placeholders": self.placeholders,
            "class_names": self.class_names,
            "initializers": self.initializers,
            "token_strings": self.token_strings,
            "scores": self.scores,
            "ratios": self.ratios,
            "layers": {layer: list(pair[0].shape) for layer, pair in self.deltas.items()},
            "files": {name: path.name for name, path in paths.items()},
            "sha256": {name: sha256_file(path) for name, path in paths.items()},
        }
        paths["metadata"] = directory / METADATA_FILE
        paths["metadata"].write_text(json.dumps(metadata, indent=2, sort_keys=True), encoding="utf-8")
        return paths

    @classmethod
    def load(cls, directory: Path) -> "ConceptSet":
        metadata_path = directory / METADATA_FILE
        if not metadata_path.is_file():
            raise InvalidInputError(f"{directory} holds no concept set ({METADATA_FILE} is missing).")
        metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
        weights_path = directory / WEIGHTS_FILE
        if not weights_path.is_file() or sha256_file(weights_path) != metadata["sha256"]["weights"]:
            raise InvalidInputError(f"The weights in {directory} are missing or do not match their recorded hash.")
        tensors = load_file(str(weights_path))
        deltas: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        factors: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None
        for layer in metadata["layers"]:
            if f"{layer}.to_k.delta" in tensors:
                deltas[layer] = (tensors[f"{layer}.to_k.delta"], tensors[f"{layer}.to_v.delta"])
                continue
            factors = factors or {}
            pair = []
            for suffix in ("to_k", "to_v"):
                up, down = tensors[f"{layer}.{suffix}.delta.up"], tensors[f"{layer}.{suffix}.delta.down"]
                factors[f"{layer}.{suffix}"] = (up, down)
                pair.append(up @ down)
            deltas[layer] = (pair[0], pair[1])
        known = {"placeholders", "class_names", "initializers", "token_strings", "scores", "ratios", "layers"}
        return cls(
            placeholders=metadata["placeholders"],
            class_names=metadata["class_names"],
            initializers=metadata["initializers"],
            token_strings=metadata["token_strings"],
            embeddings=tensors["embeddings"],
            deltas=deltas,
            masks=tensors["masks"].bool() if "masks" in tensors else None,
            scores=metadata["scores"],
            ratios=metadata["ratios"],
            metadata={k: v for k, v in metadata.items() if k not in known},
            factors=factors,
        )
