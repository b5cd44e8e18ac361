"""Concept-set switch cost (apply + restore) against one UNet step, and generation throughput on a warm pipeline.

The concept set is a synthetic one of the base model's shapes (two identifiers, a ΔW for every K/V layer):
switching costs the same whatever the values. One UNet step is one denoising step of a single image with
classifier-free guidance (a batch of two), the unit the switch target is stated in. Comparisons are medians of
per-pair ratios of interleaved runs (benchmarks/paired.py), flagged when too noisy to conclude.

    python -m benchmarks.generate                                       # tiny (50 steps) and sd21-random (2 steps)
    python -m benchmarks.generate --models sd21-random --sd21-steps 50 --sd21-batch 8   # on a GPU
"""

import argparse
import statistics
from collections.abc import Callable

import torch

from attencraft_core.generation import GenerationRequest, generate_batch
from attencraft_core.models import BaseModel, ConceptWeights, load_base_model
from benchmarks.paired import interleaved, timed

CONCEPTS = 2


def synchronize(model: BaseModel) -> None:
    if model.device.type == "cuda":
        torch.cuda.synchronize()


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
        class_names=[f"concept{i}" for i in range(CONCEPTS)],
    )


def switch(model: BaseModel, weights: ConceptWeights) -> None:
    with model.applied(weights):
        pass


def unet_step(model: BaseModel, size: int) -> None:
    unet = model.pipeline.unet
    latent = size // model.pipeline.vae_scale_factor
    latents = torch.randn(2, unet.config.in_channels, latent, latent, device=model.device)
    text = torch.randn(2, model.pipeline.tokenizer.model_max_length, unet.config.cross_attention_dim)
    with torch.no_grad(), model.autocast():
        unet(latents, torch.tensor([500], device=model.device), encoder_hidden_states=text.to(model.device))


def benchmark(name: str, *, steps: int, size: int | None, batch: int, repeats: int, device: str | None) -> None:
    model = load_base_model(name, device=device)
    size = size or model.resolution
    weights = synthetic_concept_set(model)

    def measured(work: Callable[[], object]) -> Callable[[], float]:
        return timed(work, synchronize=lambda: synchronize(model))

    def draw(images: int) -> None:
        request = GenerationRequest(
            "<concept0> and <concept1>", steps=steps, height=size, width=size, num_images=images
        )
        generate_batch(model, weights, [request], max_batch_images=images)

    step = measured(lambda: unet_step(model, size))
    switching = interleaved("switch_fraction_of_step", step, measured(lambda: switch(model, weights)), pairs=repeats)
    print(f"model={name} device={model.device} size={size} steps={steps} batch={batch}")
    print(f"  switch_ms={statistics.median(switching.candidate_seconds) * 1e3:.3f}")
    print(f"  unet_step_ms={statistics.median(switching.baseline_seconds) * 1e3:.3f}")
    print(f"  {switching.report()}")
    single = measured(lambda: draw(1))
    if batch > 1:
        batched = interleaved(f"batch_{batch}_time_over_batch_1", single, measured(lambda: draw(batch)), pairs=repeats)
        print(f"  latency_s={statistics.median(batched.baseline_seconds):.3f} (one image, {steps} steps)")
        print(f"  {batched.report()}")
        print(f"  images_per_s={batch / statistics.median(batched.candidate_seconds):.3f} (batch {batch})")
        print(f"  throughput_gain={batch / batched.ratio:.2f}x (batch {batch} over batch 1, paired)")
    else:
        latency_s = statistics.median(single() for _ in range(repeats))
        print(f"  latency_s={latency_s:.3f} (one image, {steps} steps)")


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
