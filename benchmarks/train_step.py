"""AttenCraft training step vs a plain Custom-Diffusion-style step, timed in interleaved pairs in one process.

The plain step trains the same parameters (identifier vectors, cross-attention W_k/W_v) with the same optimizer,
but records no attention (SDPA in every layer) and minimises the unmasked noise MSE alone. Also reports mask
creation and ratio estimation as multiples of one plain step. Every figure is the median of per-pair ratios
(benchmarks/paired.py), flagged when the pairs spread too widely to conclude.

    python -m benchmarks.train_step --model sd21-random --steps 3     # SD 2.1-base architecture, CPU: minutes
    python -m benchmarks.train_step --model tiny --steps 20           # seconds
"""

import argparse
from collections.abc import Callable

import torch
import torch.nn.functional as F

from attencraft_cli.sample_photo import two_object_photo
from attencraft_core.augmentation import TrainingPhoto
from attencraft_core.config import TrainingConfig
from attencraft_core.methods.attencraft import AttenCraft, concept_prompt
from attencraft_core.methods.base import MethodContext
from attencraft_core.models import BaseModel, load_base_model
from attencraft_core.pipeline import create_masks, estimate_scores
from attencraft_core.ratios import sampling_probabilities, sampling_ratios
from attencraft_core.training import Trainer
from benchmarks.paired import interleaved, timed


def synchronize(model: BaseModel) -> None:
    if model.device.type == "cuda":
        torch.cuda.synchronize()


def plain_step(trainer: Trainer, input_ids: torch.Tensor, generator: torch.Generator) -> None:
    """Custom Diffusion: noise-prediction MSE on the whole image, no attention maps, no attention loss."""
    model = trainer.model
    timestep = torch.randint(0, 1000, (1,), generator=generator).to(model.device)
    latents = trainer.photo.latents[False]
    noise = torch.randn(latents.shape, generator=generator).to(model.device)
    noisy = trainer.scheduler.add_noise(latents, noise, timestep)
    with model.autocast():
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
    parser.add_argument("--steps", type=int, default=3, help="timed pairs of each comparison (after a warm-up)")
    parser.add_argument("--device", default=None)
    arguments = parser.parse_args()

    torch.manual_seed(0)
    model = load_base_model(arguments.model, device=arguments.device)
    config = TrainingConfig()
    photo = two_object_photo(model.resolution)
    latents = model.encode_image(photo)
    identifiers = torch.stack([model.initial_identifier(word) for word in ("cat", "dog")])
    model.set_identifiers(identifiers)
    prompt_ids = model.prompt_ids(concept_prompt(model.slot_tokens, (0, 1)))
    masks, _ = create_masks(model, latents, prompt_ids, ["cat", "dog"], config.masks, 0)
    scores = estimate_scores(model, latents, prompt_ids, masks, config.ratios, 1)
    context = MethodContext(
        ["cat", "dog"], model.slot_tokens[:2], model.slot_ids[:2], model.latent_size, model.attention_grids.cross, masks
    )
    method = AttenCraft(config.recipe, context, sampling_probabilities(sampling_ratios(scores)))
    trainer = Trainer(model, method, TrainingPhoto(model, photo, latents, config.recipe), identifiers, config)
    plain_ids = model.prompt_ids(concept_prompt(model.slot_tokens, (0,)))
    generator = torch.Generator().manual_seed(0)

    def plain() -> None:
        plain_step(trainer, plain_ids, generator)

    def masking() -> None:  # with the trainer's identifier vectors, as set by the trainer
        create_masks(model, latents, prompt_ids, ["cat", "dog"], config.masks, 0)

    def estimating() -> None:
        estimate_scores(model, latents, prompt_ids, masks, config.ratios, 1)

    def paired(name: str, candidate: Callable[[], object]) -> None:
        wait = lambda: synchronize(model)  # noqa: E731
        timing = interleaved(
            name, timed(plain, synchronize=wait), timed(candidate, synchronize=wait), pairs=arguments.steps
        )
        print(timing.report())

    print(f"model={arguments.model} device={model.device} resolution={model.resolution} pairs={arguments.steps}")
    try:
        paired("overhead_ratio (AttenCraft step / plain step)", trainer.step)
        paired("mask_creation_in_plain_steps", masking)
        paired("ratio_estimation_in_plain_steps", estimating)
    finally:
        trainer.close()


if __name__ == "__main__":
    main()
