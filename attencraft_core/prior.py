"""Prior preservation's class images (BASELINES §6.2.3): generated once by the base model for a class prompt,
encoded to latents and kept in a cache shared across jobs, keyed by base model + prompt + count + seed.

The core only sees the small `PriorImageCache` interface; the worker backs it with the object store.
"""

import hashlib
from pathlib import Path
from typing import Protocol

import torch
from safetensors.torch import load, save

from attencraft_core.generation import GenerationRequest, generate
from attencraft_core.models import BaseModel


class PriorImageCache(Protocol):
    def load(self, key: str) -> bytes | None:
        """The bytes stored under key, or None."""

    def store(self, key: str, data: bytes) -> None: ...


class MemoryPriorCache:
    """A cache held by one process (tests, evaluation runs, a CLI run without a data directory)."""

    def __init__(self) -> None:
        self.entries: dict[str, bytes] = {}

    def load(self, key: str) -> bytes | None:
        return self.entries.get(key)

    def store(self, key: str, data: bytes) -> None:
        self.entries[key] = data


class DirectoryPriorCache:
    """A cache in a local folder (the CLI's `attencraft train`)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def load(self, key: str) -> bytes | None:
        path = self.directory / key
        return path.read_bytes() if path.is_file() else None

    def store(self, key: str, data: bytes) -> None:
        path = self.directory / key
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_bytes(data)
        partial.replace(path)


def cache_key(model: BaseModel, prompt: str, count: int, seed: int, sampling_steps: int) -> str:
    """<base fingerprint>/<prompt hash>-<count>-<seed>-<sampling steps>.safetensors"""
    prompt_hash = hashlib.sha256(prompt.encode()).hexdigest()[:16]
    return f"{model.fingerprint[:24]}/{prompt_hash}-{count}-{seed}-{sampling_steps}.safetensors"


def class_latents(
    model: BaseModel, prompt: str, count: int, seed: int, sampling_steps: int, cache: PriorImageCache
) -> torch.Tensor:
    """(count, 4, h, w) latents of `count` images the base model draws for `prompt` (image j from seed + j; PNDM,
    guidance 7.5, as the diffusers class-image scripts)."""
    key = cache_key(model, prompt, count, seed, sampling_steps)
    stored = cache.load(key)
    if stored is not None:
        return load(stored)["latents"]
    images = generate(model, None, GenerationRequest(prompt, num_images=count, seed=seed, steps=sampling_steps))
    latents = torch.cat([model.encode_image(image) for image in images]).cpu()
    cache.store(key, save({"latents": latents.contiguous()}, metadata={"prompt": prompt, "base_model": model.name}))
    return latents
