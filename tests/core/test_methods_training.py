"""Every method trained for a few steps on the tiny model through the one loop."""

from dataclasses import replace

import pytest
import torch
from PIL import Image

from attencraft_contract.methods import build_recipe
from attencraft_core import pipeline
from attencraft_core.config import TrainingConfig
from attencraft_core.errors import InvalidInputError
from attencraft_core.generation import GenerationRequest, generate
from attencraft_core.methods import create_method
from attencraft_core.pipeline import ConceptSpec, LearnCallbacks, learn_concepts
from attencraft_core.prior import MemoryPriorCache, class_latents
from tests.core.tiny import changed, state

PRIOR_SAMPLING_STEPS = 2  # class images need not look like anything here: this keeps them cheap
CONCEPTS = [ConceptSpec("cat"), ConceptSpec("dog")]
MASKED = {"attencraft", "textual_localization_hard", "textual_localization_soft", "break_a_scene"}
BASELINES = ["custom_diffusion", "disendiff", "textual_localization_hard", "textual_localization_soft", "break_a_scene"]


class CountingCache(MemoryPriorCache):
    def __init__(self) -> None:
        super().__init__()
        self.stores = 0

    def store(self, key: str, data: bytes) -> None:
        self.stores += 1
        super().store(key, data)


@pytest.fixture(scope="module")
def prior_cache() -> CountingCache:
    return CountingCache()


@pytest.fixture(scope="module")
def halves(image):
    left = image.convert("L").point(lambda _: 0)
    right = left.copy()
    left.paste(255, (0, 0, 128, 256))
    right.paste(255, (128, 0, 256, 256))
    return [left, right]


def _train(tiny, image, method, masks, cache, callbacks=None, steps=3, **overrides):
    """`masks` reach the methods that use masks (and AttenCraft); the others get none."""
    recipe = build_recipe(method, steps=steps, **overrides)
    return learn_concepts(
        tiny,
        image,
        CONCEPTS,
        TrainingConfig(recipe=recipe, seed=1, prior_sampling_steps=PRIOR_SAMPLING_STEPS),
        user_masks=masks if method in MASKED else None,
        callbacks=callbacks,
        prior_cache=cache,
    )


@pytest.mark.parametrize("method", BASELINES)
def test_each_method_trains_only_its_parameters_and_its_artifact_generates(
    tiny, image, pristine, halves, prior_cache, method
):
    seen: dict[str, set[str]] = {}

    def on_step(record, total):
        if record.step == total:
            seen["changed"] = changed(pristine, state(tiny))

    concept_set = _train(tiny, image, method, halves, prior_cache, LearnCallbacks(on_step=on_step), prior_images=1)
    kv = {f"unet.{layer}.{proj}.weight" for layer in tiny.kv_layers for proj in ("to_k", "to_v")}
    assert seen["changed"] == kv
    assert changed(pristine, state(tiny)) == set()
    initial = torch.stack([tiny.initial_identifier(word).cpu() for word in concept_set.initializers])
    assert all(not torch.equal(concept_set.embeddings[row], initial[row]) for row in range(2))
    assert concept_set.metadata["method"] == method
    assert concept_set.metadata["hyperparameters"]["recipe"]["method"] == method
    assert concept_set.metadata["prior"]["prompts"]

    request = GenerationRequest("<cat> on the beach", steps=2, seed=1)
    picture = generate(tiny, concept_set.weights(), request)[0]
    assert picture.size == (256, 256)
    assert changed(pristine, state(tiny)) == set()


def test_generation_expands_placeholders_the_way_the_method_trained(tiny, image, halves, prior_cache):
    custom = _train(tiny, image, "custom_diffusion", halves, prior_cache, steps=1, prior_preservation=False)
    scene = _train(tiny, image, "break_a_scene", halves, prior_cache, steps=2, prior_preservation=False)
    tokens = tiny.slot_tokens[:2]
    assert custom.weights().prompt_text(tokens) == {"<cat>": f"{tokens[0]} cat", "<dog>": f"{tokens[1]} dog"}
    assert scene.weights().prompt_text(tokens) == {"<cat>": tokens[0], "<dog>": tokens[1]}
    assert custom.metadata["prompt_expansion"] == "token+class"
    assert custom.initializers == ["ktn", "pll"]  # Custom Diffusion's rare-token start
    assert custom.masks is None and custom.metadata["masks_source"] == "none"


def test_break_a_scene_trains_embeddings_first_then_switches_to_kv_at_the_configured_step(
    tiny, image, pristine, halves, prior_cache
):
    during: dict[int, set[str]] = {}
    callbacks = LearnCallbacks(
        on_step=lambda record, total: during.update({record.step: changed(pristine, state(tiny))})
    )
    concept_set = _train(
        tiny, image, "break_a_scene", halves, prior_cache, callbacks, steps=3, prior_preservation=False
    )
    assert build_recipe("break_a_scene", steps=3).stages[0].steps == 2
    assert during[1] == during[2] == set()  # stage 1: only the identifier vectors move
    assert during[3] == {f"unet.{layer}.{proj}.weight" for layer in tiny.kv_layers for proj in ("to_k", "to_v")}
    assert concept_set.metadata["masks_source"] == "uploaded"


def test_uploaded_masks_reach_localization_and_break_a_scene_at_the_models_resolution(tiny, image, monkeypatch):
    """BASELINES §5.4: TL's 256x256 targets and BAS's latent masks come from the upload at full resolution, not from
    the 16x16 grid the artifact keeps. The boundary at x = 120 px lies inside a grid cell (112-127)."""
    left = Image.new("L", image.size, 0)
    left.paste(255, (0, 0, 120, 256))
    right = Image.eval(left, lambda value: 255 - value)
    created = []

    def spy(recipe, context, probabilities):
        created.append(create_method(recipe, context, probabilities))
        return created[-1]

    monkeypatch.setattr(pipeline, "create_method", spy)
    for method in ("break_a_scene", "textual_localization_hard"):
        concept_set = _train(tiny, image, method, [left, right], None, steps=2, prior_preservation=False)
        assert concept_set.masks.shape == (2, 16, 16) and int(concept_set.masks[0, 0].sum()) == 7
    scene, localization = created
    latent = torch.zeros(2, 32, 32)
    latent[0, :, :15] = 1  # nearest: latent column i reads pixel 8i, and 8 * 14 < 120
    latent[1, :, 15:] = 1
    assert torch.equal(scene.latent_masks[False], latent)
    target = torch.zeros(2, 256, 256)  # tiny's 256 px: TL's 256x256 target is the upload itself
    target[0, :, :120] = 1
    target[1, :, 120:] = 1
    assert torch.equal(localization.targets[False], target)


def test_detaching_the_sot_key_and_value_changes_what_custom_diffusion_trains(tiny, image):
    recipe = build_recipe("custom_diffusion", steps=1, prior_preservation=False)
    assert recipe.detach_sot_kv
    runs = [
        learn_concepts(tiny, image, CONCEPTS, TrainingConfig(recipe=replace(recipe, detach_sot_kv=detach), seed=1))
        for detach in (True, False)
    ]
    layer = next(iter(tiny.kv_layers))
    assert not torch.equal(runs[0].deltas[layer][0], runs[1].deltas[layer][0])
    assert not tiny.recorder.detach_sot_kv


def test_masks_fall_back_to_attention_masks_when_none_are_uploaded(tiny, image, prior_cache):
    recipe = build_recipe("break_a_scene", steps=2, prior_preservation=False)
    concept_set = learn_concepts(tiny, image, CONCEPTS, TrainingConfig(recipe=recipe, seed=3))
    assert concept_set.metadata["masks_source"] == "attention"
    assert concept_set.masks is not None and concept_set.masks.any(dim=(1, 2)).all()


def test_masks_for_a_method_that_uses_none_are_refused(tiny, image, halves):
    with pytest.raises(InvalidInputError, match="Method custom_diffusion uses no masks"):
        learn_concepts(
            tiny, image, CONCEPTS, TrainingConfig(recipe=build_recipe("custom_diffusion")), user_masks=halves
        )


def test_class_images_are_generated_once_and_then_read_from_the_cache(tiny):
    cache = CountingCache()
    first = class_latents(tiny, "a photo of a cat", 1, 5, PRIOR_SAMPLING_STEPS, cache)
    second = class_latents(tiny, "a photo of a cat", 1, 5, PRIOR_SAMPLING_STEPS, cache)
    assert cache.stores == 1
    assert torch.equal(first, second) and first.shape == (1, 4, 32, 32)
    class_latents(tiny, "a photo of a cat", 1, 6, PRIOR_SAMPLING_STEPS, cache)  # another seed is another entry
    assert cache.stores == 2


def test_a_second_job_reuses_the_first_jobs_class_images(tiny, image, halves):
    cache = CountingCache()
    _train(tiny, image, "custom_diffusion", halves, cache, steps=1, prior_images=1)
    stored = cache.stores
    assert stored == 2  # "cat" and "dog"
    _train(tiny, image, "custom_diffusion", halves, cache, steps=1, prior_images=1)
    assert cache.stores == stored


def test_equal_ratios_ignore_the_attention_scores_and_change_nothing_else(tiny, image, halves):
    adaptive = _train(tiny, image, "attencraft", halves, None, steps=1)
    equal = _train(tiny, image, "attencraft", halves, None, steps=1, ratios="equal")
    no_softmax = _train(tiny, image, "attencraft", halves, None, steps=1, ratios="no_softmax")
    assert equal.ratios == [0.5, 0.5]
    assert adaptive.scores == equal.scores == no_softmax.scores
    assert torch.equal(adaptive.masks, equal.masks)
    normalized = [s / sum(adaptive.scores) for s in adaptive.scores]
    assert no_softmax.ratios == pytest.approx([1 - n for n in normalized])
    assert adaptive.ratios != pytest.approx(no_softmax.ratios)


def test_omega_sets_the_share_of_multi_concept_steps(tiny, image, halves):
    only_single = _train(tiny, image, "attencraft", halves, None, steps=4, omega=0.0)
    only_multi = _train(tiny, image, "attencraft", halves, None, steps=4, omega=1.0)
    assert all(len(record.subset) == 1 for record in only_single.history)
    assert all(len(record.subset) == 2 for record in only_multi.history)


def test_trained_weights_come_out_every_k_steps_ready_for_generation(tiny, image, halves):
    snapshots = []
    callbacks = LearnCallbacks(on_weights=lambda step, weights: snapshots.append((step, weights)), weights_every=2)
    final = _train(tiny, image, "attencraft", halves, None, callbacks, steps=5)
    assert [step for step, _ in snapshots] == [2, 4]  # step 5's are the returned concept set's
    assert not torch.equal(snapshots[0][1].embeddings, snapshots[1][1].embeddings)
    assert not torch.equal(snapshots[1][1].embeddings, final.embeddings)
    assert snapshots[0][1].placeholders == ["<cat>", "<dog>"]
    assert generate(tiny, snapshots[0][1], GenerationRequest("<cat>", steps=2))[0].size == (256, 256)
