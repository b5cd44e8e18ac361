import dataclasses

import numpy as np
import pytest

from attencraft_core.errors import (
    BaseModelMismatchError,
    InvalidInputError,
    PromptTooLongError,
    UnknownPlaceholderError,
)
from attencraft_core.generation import GenerationRequest, generate, generate_batch


def test_unknown_placeholder_lists_the_known_ones(tiny, trained):
    concept_set, _ = trained
    with pytest.raises(UnknownPlaceholderError) as caught:
        generate(tiny, concept_set.weights(), GenerationRequest("<cow> and <cat>"))
    assert caught.value.unknown == ["<cow>"]
    assert caught.value.known == ["<cat>", "<dog>"]
    assert tiny.identifier_embedding.identifiers.numel() == 0


def test_a_prompt_longer_than_the_text_encoder_reads_is_refused(tiny, trained):
    concept_set, _ = trained
    with pytest.raises(PromptTooLongError):
        generate(tiny, concept_set.weights(), GenerationRequest("<cat> " + "very " * 80 + "cute"))


@pytest.mark.parametrize(
    "change", [{"scheduler": "euler-x"}, {"height": 100}, {"num_images": 0}], ids=["scheduler", "size", "count"]
)
def test_bad_generation_options_are_refused(tiny, trained, change):
    concept_set, _ = trained
    with pytest.raises(InvalidInputError):
        generate(tiny, concept_set.weights(), dataclasses.replace(GenerationRequest("<cat>"), **change))


@pytest.mark.parametrize("scheduler", ["ddim", "dpmsolver++"])
def test_other_schedulers_generate(tiny, trained, scheduler):
    concept_set, _ = trained
    request = GenerationRequest("<cat>", steps=2, scheduler=scheduler, height=64, width=128, num_images=2)
    images = generate(tiny, concept_set.weights(), request)
    assert [image.size for image in images] == [(128, 64)] * 2
    assert type(tiny.pipeline.scheduler).__name__ == "PNDMScheduler"


def test_a_concept_set_of_another_base_model_is_refused(tiny, trained):
    concept_set, _ = trained
    foreign = dataclasses.replace(concept_set.weights(), base_fingerprint="0" * 64, base_model="other")
    with pytest.raises(BaseModelMismatchError, match="other"):
        generate(tiny, foreign, GenerationRequest("<cat>", steps=1))


def test_batched_requests_equal_requests_generated_alone(tiny, trained):
    concept_set, _ = trained
    first = GenerationRequest("<cat> on the beach", steps=3, seed=5, num_images=2)
    second = GenerationRequest("<dog> in Paris", negative_prompt="<cat>", steps=3, seed=9)
    other_settings = GenerationRequest("<dog>", steps=2, seed=1, scheduler="ddim")
    batched = generate_batch(tiny, concept_set.weights(), [first, second, other_settings], max_batch_images=2)
    assert [len(images) for images in batched] == [2, 1, 1]
    for request, images in zip((first, second, other_settings), batched, strict=True):
        alone = generate(tiny, concept_set.weights(), request)
        for a, b in zip(alone, images, strict=True):
            difference = np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16))
            assert difference.max() <= 1
    assert batched[0][0].tobytes() != batched[0][1].tobytes()  # image j is seeded seed + j
