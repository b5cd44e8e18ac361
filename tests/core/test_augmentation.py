"""The photo a training step sees: mirrored where the recipe flips, resize-augmented where it augments, and the loop
training on exactly what was drawn (latents, orientation, validity mask, prompt prefix)."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from attencraft_contract.methods import build_recipe
from attencraft_core import pipeline
from attencraft_core.augmentation import FAR_PREFIXES, NEAR_PREFIXES, StepPhoto, TrainingPhoto, resize_augmentation
from attencraft_core.config import TrainingConfig
from attencraft_core.images import prepare_image
from attencraft_core.methods import create_method
from attencraft_core.methods.base import MethodContext
from attencraft_core.pipeline import ConceptSpec, learn_concepts
from attencraft_core.training import Trainer

SIZE = 96
LATENT = 12  # factor 8, as Stable Diffusion's VAE


def _photo() -> Image.Image:
    pixels = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def test_a_shrunk_photo_is_pasted_on_a_zero_canvas_and_only_its_inside_counts():
    """The pasted square is where the canvas is not zero (a uint8 pixel never maps to 0 in [-1, 1]); M_valid is
    that square on the latent grid, one cell in from each side; the prefix follows the scale."""
    sizes, shrunk = set(), 0
    for seed in range(60):
        drawn = resize_augmentation(_photo(), LATENT, torch.Generator().manual_seed(seed))
        covered = (drawn.pixels[0] != 0).any(dim=0)
        if drawn.prefix in NEAR_PREFIXES:  # enlarged and cropped
            assert covered.all() and torch.equal(drawn.valid, torch.ones(LATENT, LATENT))
            continue
        shrunk += 1
        rows, columns = covered.any(dim=1).nonzero()[:, 0], covered.any(dim=0).nonzero()[:, 0]
        top, left, scale = int(rows[0]), int(columns[0]), len(rows)
        assert len(columns) == scale and SIZE // 3 <= scale <= SIZE
        sizes.add(scale)
        expected = torch.zeros(LATENT, LATENT)
        expected[top // 8 + 1 : (top + scale) // 8 - 1, left // 8 + 1 : (left + scale) // 8 - 1] = 1
        assert torch.equal(drawn.valid, expected)
        assert drawn.prefix in (FAR_PREFIXES if scale < 0.6 * SIZE else ("",))
    assert 25 <= shrunk <= 55 and len(sizes) > 10  # p = 0.66 of shrinking, scales spread


def test_an_enlarged_photo_is_a_crop_of_the_photo_resized_up():
    for seed in range(40):
        drawn = resize_augmentation(_photo(), LATENT, torch.Generator().manual_seed(seed))
        if drawn.prefix in NEAR_PREFIXES:
            break
    crop = drawn.pixels[0].permute(1, 2, 0).numpy()
    for scale in range(int(1.2 * SIZE), int(1.4 * SIZE)):
        big = np.asarray(_photo().resize((scale, scale), Image.Resampling.BILINEAR), dtype=np.float32) / 127.5 - 1
        found = [
            (top, left)
            for top in range(scale - SIZE + 1)
            for left in range(scale - SIZE + 1)
            if np.array_equal(big[top : top + SIZE, left : left + SIZE], crop)
        ]
        if found:
            return
    pytest.fail("the enlarged photo is no crop of the photo at any scale in [1.2 S, 1.4 S)")


def test_a_flipping_recipe_shows_the_mirrored_photo_in_about_half_the_steps(tiny, image):
    photo = prepare_image(image, tiny.resolution)
    latents = tiny.encode_image(photo)
    shown = TrainingPhoto(tiny, photo, latents, build_recipe("break_a_scene"))
    mirrored = tiny.encode_image(ImageOps.mirror(photo))
    generator = torch.Generator().manual_seed(0)
    draws = [shown.draw(generator) for _ in range(40)]
    assert 10 <= sum(draw.flipped for draw in draws) <= 30
    assert all(torch.equal(d.latents, mirrored if d.flipped else latents) for d in draws)
    assert all(d.valid is None and d.prefix == "" for d in draws)
    plain = TrainingPhoto(tiny, photo, latents, build_recipe("custom_diffusion"))
    assert not any(plain.draw(generator).flipped for _ in range(10))


def test_an_augmenting_recipe_encodes_each_steps_photo(tiny, image):
    photo = prepare_image(image, tiny.resolution)
    shown = TrainingPhoto(tiny, photo, tiny.encode_image(photo), build_recipe("custom_diffusion", "official"))
    drawn = shown.draw(torch.Generator().manual_seed(3))
    expected = resize_augmentation(
        ImageOps.mirror(photo) if drawn.flipped else photo, 32, _after_flip_draw(3, flips=True)
    )
    assert torch.equal(drawn.latents, tiny.encode_pixels(expected.pixels))
    assert torch.equal(drawn.valid, expected.valid) and drawn.prefix == expected.prefix


def _after_flip_draw(seed: int, *, flips: bool) -> torch.Generator:
    """A generator seeded like the one TrainingPhoto.draw got, past the flip's draw."""
    generator = torch.Generator().manual_seed(seed)
    if flips:
        torch.rand((), generator=generator)
    return generator


class ScriptedPhoto:
    """Steps alternate: a plain photo of latents +100, then a mirrored, shrunk one of -100 with a prefix."""

    def __init__(self) -> None:
        self.draws = 0

    def draw(self, generator: torch.Generator) -> StepPhoto:
        self.draws += 1
        if self.draws % 2:
            return StepPhoto(torch.full((1, 4, 32, 32), 100.0), flipped=False, valid=None, prefix="")
        valid = torch.zeros(32, 32)
        valid[4:20, 4:20] = 1
        return StepPhoto(torch.full((1, 4, 32, 32), -100.0), flipped=True, valid=valid, prefix="a far away ")


def test_the_loop_trains_on_what_the_photo_drew(tiny):
    recipe = build_recipe("custom_diffusion", steps=4, prior_preservation=False)
    context = MethodContext(["cat", "dog"], tiny.slot_tokens[:2], tiny.slot_ids[:2], (32, 32), (8, 8), None)
    method = create_method(recipe, context, None)
    seen: list[dict] = []
    original_loss = method.loss

    def loss(step):
        seen[-1].update(flipped=step.flipped, valid=step.valid)
        return original_loss(step)

    method.loss = loss
    prompts: list[str] = []
    decode = tiny.pipeline.tokenizer.decode
    hook = tiny.pipeline.unet.register_forward_pre_hook(lambda _, args: seen.append({"negative": args[0].mean() < 0}))
    text = tiny.pipeline.text_encoder.register_forward_pre_hook(
        lambda _, args: prompts.append(decode(args[0][0], skip_special_tokens=True))
    )
    identifiers = torch.stack([tiny.initial_identifier(word) for word in ("ktn", "pll")])
    trainer = Trainer(tiny, method, ScriptedPhoto(), identifiers, TrainingConfig(recipe=recipe, seed=1))
    try:
        for _ in range(4):
            trainer.step()
    finally:
        trainer.close()
        hook.remove()
        text.remove()
    assert [bool(s["negative"]) for s in seen] == [s["flipped"] for s in seen] == [False, True, False, True]
    assert seen[0]["valid"] is None and int(seen[1]["valid"].sum()) == 256
    assert [prompt.startswith("a far away photo of a") for prompt in prompts] == [False, True, False, True]


def test_learn_concepts_hands_the_loop_the_prepared_photo_under_the_recipe(tiny, image, monkeypatch):
    given: list[TrainingPhoto] = []

    class Spy(Trainer):
        def __init__(self, model, method, photo, *args, **kwargs):
            given.append(photo)
            super().__init__(model, method, photo, *args, **kwargs)

    monkeypatch.setattr(pipeline, "Trainer", Spy)
    recipe = build_recipe("custom_diffusion", "official", steps=2, prior_preservation=False)
    learn_concepts(tiny, image, [ConceptSpec("cat"), ConceptSpec("dog")], TrainingConfig(recipe=recipe))
    prepared = prepare_image(image, tiny.resolution)
    assert given[0].recipe == recipe
    assert np.array_equal(np.asarray(given[0].photos[False]), np.asarray(prepared))
    assert torch.equal(given[0].latents[False], tiny.encode_image(prepared))
