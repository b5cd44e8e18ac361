"""Concept-set switch cost (apply + restore) against one UNet step, and generation throughput on a warm pipeline.

The concept set is a synthetic one of the base model's shapes (two identifiers, a ΔW for every K/V layer):
switching costs the same whatever the values. One UNet step is one denoising step of a single image with
classifier-free guidance (a batch of two), the unit the switch target is stated in.

    python benchmarks/generate.py                                       # tiny (50 steps) and sd21-random (2 steps)
    python benchmarks/generate.py --models sd21-random --sd21-steps 50 --sd21-batch 8   # on a GPU
"""

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from attencraft_core.generation import GenerationRequest, generate_batch
from attencraft_core.models import BaseModel, ConceptWeights, load_base_model
from attencraft_core.training import autocast

CONCEPTS = 2


def synchronize(model: BaseModel) -> None:
    if model.device.type == "cuda":
        torch.cuda.synchronize()


def median_seconds(model: BaseModel, work: Callable[[], object], repeats: int) -> float:
    """Median over ``repeats`` timed runs after one warm-up."""
    times = []
    for repetition in range(repeats + 1):
        synchronize(model)
        started = time.perf_counter()
        work()
        synchronize(model)
        if repetition:
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def synthetic_concept_set(model: BaseModel) -> ConceptWeights:
    generator = torch.Generator().manual_seed(0)
    embedding_size = model.identifier_embedding.base.weight.shape[1]
    deltas = {
        layer: tuple(1e-3 * torch.randn(weight.shape, generator=generator).to(model.device) for weight in pair)
        for layer, pair in model.base_kv_weights().items()
    }
    return ConceptWeights(
        placeholders=[f"<concept{i}>" for i in range(CONCEPTS)],
        embeddings=torch.randn(CONCEPTS, embedding_size, generator=generator).to(model.device),
        deltas=deltas,
        base_fingerprint=model.fingerprint,
        base_model=model.name,
    )


def switch(model: BaseModel, weights: ConceptWeights) -> None:
    with model.applied(weights):
        pass


def unet_step(model: BaseModel, size: int) -> None:
    unet = model.pipeline.unet
    latent = size // model.pipeline.vae_scale_factor
    latents = torch.randn(2, unet.config.in_channels, latent, latent, device=model.device)
    text = torch.randn(2, model.pipeline.tokenizer.model_max_length, unet.config.cross_attention_dim)
    with torch.no_grad(), autocast(model):
        unet(latents, torch.tensor([500], device=model.device), encoder_hidden_states=text.to(model.device))


def benchmark(name: str, *, steps: int, size: int | None, batch: int, repeats: int, device: str | None) -> None:
    model = load_base_model(name, device=device)
    size = size or model.resolution
    weights = synthetic_concept_set(model)
    switch_s = median_seconds(model, lambda: switch(model, weights), repeats * 10)
    step_s = median_seconds(model, lambda: unet_step(model, size), repeats)

    def draw(images: int) -> None:
        request = GenerationRequest(
            "<concept0> and <concept1>", steps=steps, height=size, width=size, num_images=images
        )
        generate_batch(model, weights, [request], max_batch_images=images)

    latency_s = median_seconds(model, lambda: draw(1), max(1, repeats // 2))
    print(f"model={name} device={model.device} size={size} steps={steps} batch={batch}")
    print(f"  switch_ms={switch_s * 1e3:.3f}")
    print(f"  unet_step_ms={step_s * 1e3:.3f}")
    print(f"  switch_fraction_of_step={switch_s / step_s:.4f}")
    print(f"  latency_s={latency_s:.3f} (one image, {steps} steps)")
    print(f"  images_per_s={1 / latency_s:.3f} (batch 1)")
    if batch > 1:
        batch_s = median_seconds(model, lambda: draw(batch), max(1, repeats // 2))
        print(f"  images_per_s={batch / batch_s:.3f} (batch {batch})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="tiny,sd21-random", help="comma-separated: tiny, sd21-random, a folder")
    parser.add_argument("--tiny-steps", type=int, default=50)
    parser.add_argument("--sd21-steps", type=int, default=2, help="denoising steps for every model but tiny")
    parser.add_argument("--sd21-size", type=int, default=512)
    parser.add_argument("--tiny-batch", type=int, default=4)
    parser.add_argument("--sd21-batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default=None)
    arguments = parser.parse_args()
    for name in arguments.models.split(","):
        tiny = name == "tiny"
        benchmark(
            name,
            steps=arguments.tiny_steps if tiny else arguments.sd21_steps,
            size=None if tiny else arguments.sd21_size,
            batch=arguments.tiny_batch if tiny else arguments.sd21_batch,
            repeats=arguments.repeats,
            device=arguments.device,
        )


if __name__ == "__main__":
    main()
