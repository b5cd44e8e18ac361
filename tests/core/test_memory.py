"""Memory options: gradient checkpointing gives the same training and needs less memory; one VAE encoding per job."""

import pytest
import torch

from attencraft_contract.methods import build_recipe
from attencraft_core.config import TrainingConfig
from attencraft_core.model_spec import RunOptions
from attencraft_core.models import load_base_model
from attencraft_core.pipeline import ConceptSpec, learn_concepts
from benchmarks.peak_memory import peak_bytes
from tests.core.test_precision import halves

CONCEPTS = [ConceptSpec("cat"), ConceptSpec("dog")]


def test_gradient_checkpointing_trains_exactly_as_without(image):
    # Its own model: configure() changes the UNet, and the session's `tiny` is shared.
    model = load_base_model("tiny", device="cpu")
    runs = []
    for checkpointing in (False, True):
        model.configure(RunOptions(gradient_checkpointing=checkpointing))
        runs.append(learn_concepts(model, image, CONCEPTS, TrainingConfig(recipe=build_recipe(steps=3), seed=3)))
    assert model.pipeline.unet.is_gradient_checkpointing
    plain, checkpointed = runs
    assert [r.loss for r in checkpointed.history] == [r.loss for r in plain.history]
    torch.testing.assert_close(checkpointed.embeddings, plain.embeddings, rtol=0, atol=0)
    for layer, (delta_k, delta_v) in plain.deltas.items():
        torch.testing.assert_close(checkpointed.deltas[layer][0], delta_k, rtol=0, atol=0)
        torch.testing.assert_close(checkpointed.deltas[layer][1], delta_v, rtol=0, atol=0)


def test_the_photo_is_encoded_once_per_job(image):
    model = load_base_model("tiny", device="cpu")
    encodes = []
    model.pipeline.vae.encoder.register_forward_hook(lambda *_: encodes.append(1))
    learn_concepts(model, image, CONCEPTS, TrainingConfig(recipe=build_recipe(steps=3), seed=3))
    assert len(encodes) == 1


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_gradient_checkpointing_lowers_the_peak_memory_of_a_job(sd21_256, image):
    """sd21-random at 256 px (latent 32x32): a two-step job on uploaded masks (its second step holds AdamW's state,
    as every later step does), without and with checkpointing. The peak is the most bytes of tensors held at once,
    counted by torch's profiler (benchmarks/peak_memory.py): the same job gives the same bytes whatever the process
    ran before, so it needs neither a fresh process nor room for noise (0.85 leaves room for other torch versions).

    Measured: 718 MiB without, 494 MiB with, in either order. Both hold what checkpointing cannot save: the K/V weights'
    gradients and AdamW state (~290 MiB for SD 2.1's 25.6 M trainable K/V parameters)."""
    masks = halves(image)
    config = TrainingConfig(recipe=build_recipe(steps=2), seed=3)
    peaks = []
    try:
        for checkpointing in (False, True):
            sd21_256.configure(RunOptions(gradient_checkpointing=checkpointing))
            job = lambda: learn_concepts(sd21_256, image, CONCEPTS, config, user_masks=masks)  # noqa: E731
            peaks.append(peak_bytes(job, sd21_256.device))
    finally:
        sd21_256.configure(RunOptions())
    without, with_checkpointing = peaks
    print(
        f"peak above the loaded sd21-random at 256 px: {without / 2**20:.0f} MiB, {with_checkpointing / 2**20:.0f} MiB"
    )
    assert with_checkpointing < 0.85 * without
