"""Memory options: gradient checkpointing gives the same training and needs less memory; one VAE encoding per job."""

import subprocess
import sys

import pytest
import torch

from attencraft_contract.methods import build_recipe
from attencraft_core.config import TrainingConfig
from attencraft_core.model_spec import RunOptions
from attencraft_core.models import load_base_model
from attencraft_core.pipeline import ConceptSpec, learn_concepts

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
def test_gradient_checkpointing_lowers_the_peak_memory_of_a_job():
    """sd21-random at 256 px (latent 32x32): a one-step job on uploaded masks, with and without checkpointing.

    Measured on a 2-core CPU: 769 MiB without, 622 MiB with. Both include what checkpointing cannot save: the
    K/V weights' gradients and AdamW state (~300 MiB for SD 2.1's 25.6 M trainable K/V parameters) and the VAE
    encoding of the photo."""
    probe = subprocess.run(
        [sys.executable, "-m", "tests.core.memory_probe"], capture_output=True, text=True, timeout=1400, check=True
    )
    without, with_checkpointing = (int(line) for line in probe.stdout.split())
    print(
        f"peak above the loaded sd21-random at 256 px: {without / 2**20:.0f} MiB, {with_checkpointing / 2**20:.0f} MiB"
    )
    assert with_checkpointing < 0.9 * without
