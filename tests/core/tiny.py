"""Helpers for tests on the tiny model."""

import torch

from attencraft_core.models import BaseModel

TRAIN_STEPS = 8


def state(model: BaseModel) -> dict[str, torch.Tensor]:
    """Every base weight of the pipeline, cloned."""
    pipeline = model.pipeline
    return {
        f"{part}.{name}": tensor.detach().clone()
        for part, module in (("unet", pipeline.unet), ("vae", pipeline.vae), ("text", pipeline.text_encoder))
        for name, tensor in module.state_dict().items()
    }


def changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> set[str]:
    return {name for name, tensor in before.items() if not torch.equal(tensor, after[name])}
