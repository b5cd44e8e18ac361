"""A prior-preservation training step with the class prompts' text states cached once per job, against the same
step encoding them again, timed in interleaved pairs in one process (benchmarks/paired.py).

One Custom Diffusion trainer (two class prompts, random class-image latents: their generation is a one-off cached
across jobs) runs both variants on the same model; the candidate re-encodes each step's drawn class prompt, which
is what the cache saves. A ratio below 1 is the share of a step the cache saves.

    python -m benchmarks.class_prompt_cache --model tiny --pairs 20
    python -m benchmarks.class_prompt_cache --model sd21-random --resolution 256 --pairs 5   # CPU: minutes
"""

import argparse

import torch

from attencraft_cli.sample_photo import two_object_photo
from attencraft_contract.methods import build_recipe
from attencraft_core.augmentation import TrainingPhoto
from attencraft_core.config import TrainingConfig
from attencraft_core.methods import create_method
from attencraft_core.model_spec import Precision, RunOptions
from attencraft_core.models import BaseModel, load_base_model
from attencraft_core.training import Trainer
from benchmarks.method_steps import random_prior, two_concepts
from benchmarks.paired import interleaved, timed


class ReencodingTrainer(Trainer):
    """The trainer with a switch: encode the drawn class prompts in each step instead of reading the cache."""

    reencode = False

    def prior_text_states(self, prompts: list[int]) -> list[torch.Tensor]:
        if not self.reencode:
            return super().prior_text_states(prompts)
        with torch.no_grad():
            return [self.model.encode_prompt_ids(self.prior.prompt_ids[prompt]) for prompt in prompts]


def custom_diffusion_trainer(model: BaseModel) -> ReencodingTrainer:
    recipe = build_recipe("custom_diffusion")
    context = two_concepts(model, masks=None)
    method = create_method(recipe, context, None)
    photo = two_object_photo(model.resolution)
    latents = model.encode_image(photo)
    prior = random_prior(model, method.prior_prompts(), latents.shape[1:])
    identifiers = torch.stack([model.initial_identifier(word) for word in ("ktn", "pll")])
    training_photo = TrainingPhoto(model, photo, latents, recipe)
    return ReencodingTrainer(model, method, training_photo, identifiers, TrainingConfig(recipe=recipe), prior)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--resolution", type=int, default=None, help="default: the model's own")
    parser.add_argument("--precision", default=Precision.AUTO, choices=[p.value for p in Precision])
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--device", default=None)
    arguments = parser.parse_args()

    torch.manual_seed(0)
    model = load_base_model(
        arguments.model,
        device=arguments.device,
        resolution=arguments.resolution,
        options=RunOptions(precision=Precision(arguments.precision)),
    )
    trainer = custom_diffusion_trainer(model)

    def wait() -> None:
        if model.device.type == "cuda":
            torch.cuda.synchronize(model.device)

    def step(reencode: bool) -> None:
        trainer.reencode = reencode
        trainer.step()

    print(f"model={arguments.model} device={model.device} resolution={model.resolution} pairs={arguments.pairs}")
    try:
        timing = interleaved(
            "step_ratio (re-encoding class prompts / cached)",
            timed(lambda: step(reencode=False), synchronize=wait),
            timed(lambda: step(reencode=True), synchronize=wait),
            pairs=arguments.pairs,
        )
    finally:
        trainer.close()
    print(timing.report())
    print(f"saved per step: {timing.difference * 1000:.2f} ms (median of per-pair differences)")


if __name__ == "__main__":
    main()
