"""Per-step training time of every method relative to a Custom Diffusion step, all in one process.

Each method runs the one training loop (attencraft_core.training.Trainer) with its own recipe: its prompts, the
attention it records, its loss, and its prior-preservation batch (class images are random latents here: their
generation is a one-off, cached across jobs, and not part of a step). Masks are the photo's two halves. Methods
are timed round-robin after one warm-up round, so drift of the machine hits all of them alike; each timed step is
the first step of a fresh trainer (the trainers share the model's weights), the same for every method.

    python -m benchmarks.method_steps --model tiny --steps 10
    python -m benchmarks.method_steps --model sd21-random --steps 3       # SD 2.1-base architecture, 512 px
    python -m benchmarks.method_steps --model sd21-random --resolution 256 --steps 1   # the same, CPU-sized
"""

import argparse
import statistics
import time
from dataclasses import replace

import torch
from PIL import Image

from attencraft_cli.sample_photo import two_object_photo
from attencraft_contract.methods import Method, build_recipe
from attencraft_core.augmentation import TrainingPhoto
from attencraft_core.config import TrainingConfig
from attencraft_core.methods import create_method
from attencraft_core.methods.base import MethodContext
from attencraft_core.models import BaseModel, load_base_model
from attencraft_core.training import PriorImages, Trainer

BASELINE = Method.CUSTOM_DIFFUSION
CLASS_IMAGES = 2


def synchronize(model: BaseModel) -> None:
    if model.device.type == "cuda":
        torch.cuda.synchronize()


def halves(model: BaseModel) -> torch.Tensor:
    """bool (2, H, W) masks on the self-attention grid: left and right half of the photo."""
    height, width = model.attention_grids.self_attention
    masks = torch.zeros(2, height, width, dtype=torch.bool)
    masks[0, :, : width // 2] = True
    masks[1, :, width // 2 :] = True
    return masks


def two_concepts(model: BaseModel, masks: torch.Tensor | None) -> MethodContext:
    """A cat and a dog on the model's grids."""
    return MethodContext(
        class_names=["cat", "dog"],
        tokens=model.slot_tokens[:2],
        token_ids=model.slot_ids[:2],
        latent_size=model.latent_size,
        cross_grid=model.attention_grids.cross,
        masks=masks,
    )


def random_prior(model: BaseModel, prompts: list[str], latent_shape: torch.Size) -> PriorImages:
    """CLASS_IMAGES random latents per class prompt: class images' generation is a one-off, cached across jobs."""
    generator = torch.Generator().manual_seed(0)
    return PriorImages(
        latents=[torch.randn(CLASS_IMAGES, *latent_shape, generator=generator) for _ in prompts],
        prompt_ids=[model.prompt_ids(prompt) for prompt in prompts],
    )


def trainer_for(model: BaseModel, method: Method, photo: Image.Image, latents: torch.Tensor) -> Trainer:
    recipe = build_recipe(method)
    context = two_concepts(model, halves(model))
    training_method = create_method(recipe, context, torch.tensor([0.5, 0.5]))
    prior = None
    if recipe.prior_preservation:
        prior = random_prior(model, training_method.prior_prompts(), latents.shape[1:])
    identifiers = torch.stack([model.initial_identifier(word) for word in ("cat", "dog")])
    # Break-a-Scene's first stage trains no K/V: time its second stage, the one that does (stage 1 is cheaper).
    recipe = replace(recipe, stages=recipe.stages[-1:])
    training_photo = TrainingPhoto(model, photo, latents, recipe)
    return Trainer(model, training_method, training_photo, identifiers, TrainingConfig(recipe=recipe), prior)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per method (after one warm-up each)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--resolution", type=int, default=None, help="pixels; unset: the model's own (sd21: 512)")
    arguments = parser.parse_args()

    torch.manual_seed(0)
    model = load_base_model(arguments.model, device=arguments.device, resolution=arguments.resolution)
    photo = two_object_photo(model.resolution)
    latents = model.encode_image(photo)
    times: dict[Method, list[float]] = {method: [] for method in Method}
    for repetition in range(arguments.steps + 1):  # the first round is a warm-up
        for method in Method:
            trainer = trainer_for(model, method, photo, latents)
            try:
                synchronize(model)
                started = time.perf_counter()
                trainer.step()
                synchronize(model)
                if repetition:
                    times[method].append(time.perf_counter() - started)
            finally:
                trainer.close()

    baseline = statistics.median(times[BASELINE])
    print(f"model={arguments.model} device={model.device} resolution={model.resolution} steps={arguments.steps}")
    print(f"{'method':<28}{'s/step':>10}{'x ' + BASELINE.value:>22}")
    for method in Method:
        seconds = statistics.median(times[method])
        print(f"{method.value:<28}{seconds:>10.4f}{seconds / baseline:>22.2f}")


if __name__ == "__main__":
    main()
