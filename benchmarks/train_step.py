"""AttenCraft training step vs a plain Custom-Diffusion-style step, timed alternately in one process.

The plain step trains the same parameters (identifier vectors, cross-attention W_k/W_v) with the same optimizer,
but records no attention (SDPA in every layer) and minimises the unmasked noise MSE alone. Also reports mask
creation and ratio estimation as multiples of one plain step.

    python benchmarks/train_step.py --model sd21-random --steps 3     # SD 2.1-base architecture, CPU: minutes
    python benchmarks/train_step.py --model tiny --steps 20           # seconds
"""

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from attencraft_cli.sample_photo import two_object_photo
from attencraft_core.config import TrainingConfig
from attencraft_core.models import BaseModel, load_base_model
from attencraft_core.pipeline import create_masks, estimate_scores
from attencraft_core.ratios import sampling_probabilities
from attencraft_core.training import FeatureRetainingTrainer, autocast, concept_prompt


def synchronize(model: BaseModel) -> None:
    if model.device.type == "cuda":
        torch.cuda.synchronize()


def timed(model: BaseModel, work: Callable[[], object]) -> float:
    synchronize(model)
    started = time.perf_counter()
    work()
    synchronize(model)
    return time.perf_counter() - started


def plain_step(trainer: FeatureRetainingTrainer, input_ids: torch.Tensor, generator: torch.Generator) -> None:
    """Custom Diffusion: noise-prediction MSE on the whole image, no attention maps, no attention loss."""
    model = trainer.model
    timestep = torch.randint(0, 1000, (1,), generator=generator).to(model.device)
    noise = torch.randn(trainer.latents.shape, generator=generator).to(model.device)
    noisy = trainer.scheduler.add_noise(trainer.latents, noise, timestep)
    with autocast(model):
        text_states = model.encode_prompt_ids(input_ids)
        prediction = model.pipeline.unet(noisy, timestep, encoder_hidden_states=text_states).sample
    loss = F.mse_loss(prediction.float(), noise)
    trainer.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(trainer.parameters, trainer.config.max_grad_norm)
    trainer.optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sd21-random")
    parser.add_argument("--steps", type=int, default=3, help="timed steps of each kind (after one warm-up each)")
    parser.add_argument("--device", default=None)
    arguments = parser.parse_args()

    torch.manual_seed(0)
    model = load_base_model(arguments.model, device=arguments.device)
    config = TrainingConfig()
    latents = model.encode_image(two_object_photo(model.resolution))
    identifiers = torch.stack([model.initial_identifier(word) for word in ("cat", "dog")])
    model.set_identifiers(identifiers)
    prompt_ids = model.prompt_ids(concept_prompt(model.slot_tokens, (0, 1)))

    holder: dict[str, torch.Tensor] = {}
    mask_seconds = timed(
        model, lambda: holder.update(masks=create_masks(model, latents, prompt_ids, ["cat", "dog"], config.masks, 0)[0])
    )
    ratio_seconds = timed(
        model,
        lambda: holder.update(scores=estimate_scores(model, latents, prompt_ids, holder["masks"], config.ratios, 1)),
    )
    trainer = FeatureRetainingTrainer(
        model, latents, holder["masks"], sampling_probabilities(holder["scores"]), identifiers, config
    )
    plain_ids = model.prompt_ids(concept_prompt(model.slot_tokens, (0,)))
    generator = torch.Generator().manual_seed(0)
    attencraft_times: list[float] = []
    plain_times: list[float] = []
    try:
        for repetition in range(arguments.steps + 1):  # the first of each kind is a warm-up
            attencraft = timed(model, trainer.step)
            plain = timed(model, lambda: plain_step(trainer, plain_ids, generator))
            if repetition:
                attencraft_times.append(attencraft)
                plain_times.append(plain)
    finally:
        trainer.close()

    attencraft_step = statistics.median(attencraft_times)
    plain_step_seconds = statistics.median(plain_times)
    print(f"model={arguments.model} device={model.device} resolution={model.resolution} steps={arguments.steps}")
    print(f"attencraft_step_s={attencraft_step:.4f}")
    print(f"plain_step_s={plain_step_seconds:.4f}")
    print(f"overhead_ratio={attencraft_step / plain_step_seconds:.3f}")
    for stage, seconds in (("mask_creation", mask_seconds), ("ratio_estimation", ratio_seconds)):
        print(f"{stage}_s={seconds:.4f} {stage}_in_plain_steps={seconds / plain_step_seconds:.2f}")


if __name__ == "__main__":
    main()
