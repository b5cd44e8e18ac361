"""README's picture of the toy world: per held-out scene, the photo, its true masks, AttenCraft's stage-one masks,
and what a default AttenCraft job on it draws for each concept alone and both together.

    python -m toyworld.figure --scenes 3 --out docs/toy-world.png
"""

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from attencraft_contract import rules
from attencraft_contract.methods import build_recipe
from attencraft_core.config import TrainingConfig
from attencraft_core.generation import GenerationRequest, generate_batch
from attencraft_core.images import mask_overlay
from attencraft_core.models import BaseModel, load_base_model
from attencraft_core.pipeline import ConceptSpec, learn_concepts
from toyworld.scenes import held_out_scene

ZOOM = 4
SAMPLES = 2


def scene_row(model: BaseModel, seed: int, steps: int) -> list[Image.Image]:
    scene = held_out_scene(seed)
    photo = Image.fromarray(scene.image)
    names = [obj.class_name for obj in scene.objects]
    concept_set = learn_concepts(
        model, photo, [ConceptSpec(name) for name in names], TrainingConfig(recipe=build_recipe(steps=steps))
    )
    truth = torch.from_numpy(np.stack(scene.masks))
    placeholders = [rules.placeholder_for(name) for name in names]
    prompts = [f"a photo of {p}" for p in placeholders] + ["a photo of " + " and ".join(placeholders)]
    requests = [GenerationRequest(prompt=prompt, num_images=SAMPLES, steps=25) for prompt in prompts]
    drawn = generate_batch(model, concept_set.weights(), requests)
    return [photo, mask_overlay(photo, truth), mask_overlay(photo, concept_set.masks)] + [
        image for images in drawn for image in images
    ]


def figure(rows: list[list[Image.Image]]) -> Image.Image:
    cell = 32 * ZOOM
    header = 18
    titles = ["photo", "true masks", "AttenCraft masks", *[f"<1> #{i + 1}" for i in range(SAMPLES)]]
    titles += [f"<2> #{i + 1}" for i in range(SAMPLES)] + [f"<1> and <2> #{i + 1}" for i in range(SAMPLES)]
    sheet = Image.new("RGB", (cell * len(titles), header + cell * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for column, title in enumerate(titles):
        draw.text((column * cell + 4, 3), title, fill="black")
    for row, images in enumerate(rows):
        for column, image in enumerate(images):
            sheet.paste(image.resize((cell, cell), Image.Resampling.NEAREST), (column * cell, header + row * cell))
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="toy")
    parser.add_argument("--scenes", type=int, default=3, help="held-out scenes 0, 1, ...")
    parser.add_argument("--steps", type=int, default=TrainingConfig().steps)
    parser.add_argument("--out", type=Path, required=True)
    arguments = parser.parse_args()
    model = load_base_model(arguments.model, device="cpu")
    rows = [scene_row(model, seed, arguments.steps) for seed in range(arguments.scenes)]
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    figure(rows).save(arguments.out)


if __name__ == "__main__":
    main()
