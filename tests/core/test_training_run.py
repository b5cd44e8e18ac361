import pytest
import torch

from attencraft_contract.methods import build_recipe
from attencraft_core.config import TrainingConfig
from attencraft_core.errors import ConceptNotLocalizedError, TrainingCanceled
from attencraft_core.generation import GenerationRequest, generate
from attencraft_core.pipeline import ConceptSpec, LearnCallbacks, learn_concepts
from attencraft_core.training import TrainingCheckpoint
from tests.core.tiny import TRAIN_STEPS, changed, state

CONCEPTS = [ConceptSpec("cat"), ConceptSpec("dog")]


def test_every_identifier_token_trains(tiny, trained):
    concept_set, _ = trained
    initial = torch.stack([tiny.initial_identifier(name).cpu() for name in ("cat", "dog")])
    assert concept_set.embeddings.shape == initial.shape
    for row in range(2):
        assert not torch.equal(concept_set.embeddings[row], initial[row]), f"token {row} did not train"


def test_only_cross_attention_keys_and_values_change_during_training(tiny, trained):
    concept_set, changed_during_training = trained
    expected = {f"unet.{layer}.{proj}.weight" for layer in tiny.kv_layers for proj in ("to_k", "to_v")}
    assert changed_during_training == expected
    assert set(concept_set.deltas) == set(tiny.kv_layers)
    assert all(layer.endswith("attn2") for layer in concept_set.deltas)
    assert all(float(dk.abs().max()) > 0 and float(dv.abs().max()) > 0 for dk, dv in concept_set.deltas.values())


def test_base_model_is_bit_identical_after_training(tiny, trained, pristine):
    assert changed(pristine, state(tiny)) == set()
    assert tiny.identifier_embedding.identifiers.numel() == 0


def test_apply_generate_restore_leaves_the_base_bit_identical(tiny, trained, pristine):
    concept_set, _ = trained
    request = GenerationRequest("<cat> and <dog> on the beach", steps=3, seed=1)
    with_concepts = generate(tiny, concept_set.weights(), request)[0]
    assert changed(pristine, state(tiny)) == set()
    plain = generate(tiny, None, GenerationRequest("a cat and a dog on the beach", steps=3, seed=1))[0]
    assert changed(pristine, state(tiny)) == set()
    assert with_concepts.size == plain.size == (256, 256)
    assert with_concepts.tobytes() != plain.tobytes()
    again = generate(tiny, concept_set.weights(), request)[0]
    assert again.tobytes() == with_concepts.tobytes()


def test_same_seed_gives_the_same_artifact(tiny, image, trained):
    first, _ = trained
    second = learn_concepts(tiny, image, CONCEPTS, TrainingConfig(recipe=build_recipe(steps=TRAIN_STEPS), seed=3))
    assert torch.equal(first.embeddings, second.embeddings)
    assert torch.equal(first.masks, second.masks)
    assert first.ratios == second.ratios
    for layer, (delta_k, delta_v) in first.deltas.items():
        assert torch.equal(delta_k, second.deltas[layer][0])
        assert torch.equal(delta_v, second.deltas[layer][1])
    assert [r.subset for r in first.history] == [r.subset for r in second.history]


def test_resuming_from_a_checkpoint_matches_an_uninterrupted_run(tiny, image, trained):
    uninterrupted, _ = trained
    saved: list[bytes] = []
    with pytest.raises(TrainingCanceled):
        learn_concepts(
            tiny,
            image,
            CONCEPTS,
            TrainingConfig(recipe=build_recipe(steps=TRAIN_STEPS), seed=3),
            callbacks=LearnCallbacks(
                on_checkpoint=lambda checkpoint: saved.append(checkpoint.to_bytes()),
                checkpoint_every=3,
                should_stop=lambda: len(saved) == 2,
            ),
        )
    checkpoint = TrainingCheckpoint.from_bytes(saved[-1])
    assert checkpoint.step == 6
    resumed = learn_concepts(
        tiny, image, CONCEPTS, TrainingConfig(recipe=build_recipe(steps=TRAIN_STEPS), seed=3), resume=checkpoint
    )
    assert [r.step for r in resumed.history] == list(range(1, TRAIN_STEPS + 1))
    torch.testing.assert_close(resumed.embeddings, uninterrupted.embeddings, rtol=0, atol=0)
    for layer, (delta_k, _) in uninterrupted.deltas.items():
        torch.testing.assert_close(resumed.deltas[layer][0], delta_k, rtol=0, atol=0)


def test_cancel_stops_training_and_restores_the_base(tiny, image, pristine):
    steps: list[int] = []
    with pytest.raises(TrainingCanceled):
        learn_concepts(
            tiny,
            image,
            CONCEPTS,
            TrainingConfig(recipe=build_recipe(steps=50)),
            callbacks=LearnCallbacks(
                on_step=lambda r, total: steps.append(r.step), should_stop=lambda: len(steps) >= 2
            ),
        )
    assert steps == [1, 2]
    assert changed(pristine, state(tiny)) == set()


def test_uploaded_masks_replace_mask_creation(tiny, image):
    left = image.point(lambda _: 0).convert("L")
    right = left.copy()
    left.paste(255, (0, 0, 128, 256))
    right.paste(255, (128, 0, 256, 256))
    reported = []
    concept_set = learn_concepts(
        tiny,
        image,
        CONCEPTS,
        TrainingConfig(recipe=build_recipe(steps=1)),
        user_masks=[left, right],
        callbacks=LearnCallbacks(on_masks=reported.append),
    )
    assert concept_set.metadata["masks_source"] == "uploaded"
    assert concept_set.masks[0, :, :8].all() and not concept_set.masks[0, :, 8:].any()
    assert concept_set.masks[1, :, 8:].all() and not concept_set.masks[1, :, :8].any()
    assert len(reported[0]) == 2


def test_an_empty_mask_fails_naming_the_concept(tiny, image):
    empty = image.convert("L").point(lambda _: 0)
    full = empty.point(lambda _: 255)
    with pytest.raises(ConceptNotLocalizedError, match="dog"):
        learn_concepts(tiny, image, CONCEPTS, TrainingConfig(recipe=build_recipe(steps=1)), user_masks=[full, empty])
