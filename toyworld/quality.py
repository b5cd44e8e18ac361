"""How well a base model knows the toy world: stage-one masks against ground truth, and what its samples show."""

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from attencraft_core.config import MaskConfig
from attencraft_core.errors import ConceptNotLocalizedError
from attencraft_core.images import mask_images
from attencraft_core.methods.attencraft import concept_prompt
from attencraft_core.models import BaseModel
from attencraft_core.pipeline import create_masks, random_walk_steps
from toyworld.measures import mask_iou, shows_class
from toyworld.scenes import Scene

SAMPLE_STEPS = 25


def stage_one_masks(model: BaseModel, scene: Scene, seed: int = 0, walk_steps: int | None = None) -> list[np.ndarray]:
    """The product's masks (SPEC 2.3) for the scene's objects, named by their classes, at the scene's size;
    an all-false mask for every object when a concept could not be localised. `walk_steps`: Eq. 3's τ (default:
    the model's)."""
    names = [obj.class_name for obj in scene.objects]
    latents = model.encode_image(Image.fromarray(scene.image))
    model.set_identifiers(torch.stack([model.initial_identifier(name) for name in names]))
    try:
        prompt_ids = model.prompt_ids(concept_prompt(model.slot_tokens, tuple(range(len(names)))))
        masks, _ = create_masks(model, latents, prompt_ids, names, MaskConfig(tau=walk_steps), seed)
    except ConceptNotLocalizedError:
        return [np.zeros(scene.masks[0].shape, dtype=bool) for _ in names]
    finally:
        model.clear_identifiers()
    return [np.asarray(picture) > 127 for picture in mask_images(masks, scene.image.shape[0])]


def sample(model: BaseModel, prompt: str, seed: int, count: int = 1) -> list[np.ndarray]:
    """(H, W, 3) uint8 pictures the model draws for a prompt (PNDM, guidance 7.5)."""
    generator = torch.Generator().manual_seed(seed)
    output = model.pipeline(
        prompt,
        num_inference_steps=SAMPLE_STEPS,
        guidance_scale=7.5,
        num_images_per_prompt=count,
        generator=generator,
        output_type="np",
    )
    return [np.rint(picture * 255).astype(np.uint8) for picture in output.images]


@dataclass(frozen=True)
class BaseModelQuality:
    mask_iou_first: float  # mean IoU of the first-named concept's stage-one mask with its object (0 if not found)
    mask_iou_second: float
    not_localized: int  # scenes where stage one found no mask for a concept (the job would fail there)
    walk_steps: int  # Eq. 3's τ the masks were made with
    single_class_rate: float  # "a photo of X": share of samples showing a well-formed X
    pair_rate: float  # "a photo of X and Y": share showing both
    scenes: int
    samples_per_prompt: int

    def lines(self) -> list[str]:
        return [
            f"stage-one mask IoU over {self.scenes} scenes (random walk of {self.walk_steps} steps): first concept "
            f"{self.mask_iou_first:.2f}, second {self.mask_iou_second:.2f}; a concept not localised in "
            f"{self.not_localized} scenes",
            f"samples showing their class ({self.samples_per_prompt} per prompt): {self.single_class_rate:.0%} of "
            f"single-class prompts, {self.pair_rate:.0%} of two-class prompts show both",
        ]


def assess_base_model(
    model: BaseModel, scenes: list[Scene], samples_per_prompt: int = 4, seed: int = 0, walk_steps: int | None = None
) -> BaseModelQuality:
    firsts, seconds, singles, pairs = [], [], [], []
    not_localized = 0
    for index, scene in enumerate(scenes):
        masks = stage_one_masks(model, scene, seed, walk_steps)
        not_localized += not any(mask.any() for mask in masks)
        firsts.append(mask_iou(masks[0], scene.masks[0]))
        seconds.append(mask_iou(masks[1], scene.masks[1]))
        first, second = (obj.class_name for obj in scene.objects[:2])
        for picture in sample(model, f"a photo of {first}", seed + index, samples_per_prompt):
            singles.append(shows_class(picture, first))
        for picture in sample(model, f"a photo of {first} and {second}", seed + index, samples_per_prompt):
            pairs.append(shows_class(picture, first) and shows_class(picture, second))
    return BaseModelQuality(
        mask_iou_first=float(np.mean(firsts)),
        mask_iou_second=float(np.mean(seconds)),
        not_localized=not_localized,
        walk_steps=random_walk_steps(model, MaskConfig(tau=walk_steps)),
        single_class_rate=float(np.mean(singles)),
        pair_rate=float(np.mean(pairs)),
        scenes=len(scenes),
        samples_per_prompt=samples_per_prompt,
    )
