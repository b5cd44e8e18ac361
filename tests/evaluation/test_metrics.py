import math

import pytest
import torch
from PIL import Image, ImageDraw

from evaluation.encoders import clip_encoder, dino_encoder
from evaluation.errors import EvaluationError
from evaluation.metrics import (
    Sample,
    image_similarity,
    mask_box,
    paper_figures,
    plain_prompt,
    single_concept_reference,
    synchronicity_gap,
    text_similarity,
)


def two_object_picture() -> tuple[Image.Image, dict[str, Image.Image]]:
    """A red square top left (the cat), a blue disc bottom right (the dog), and their masks."""
    image = Image.new("RGB", (64, 48), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((4, 6, 23, 21), fill="red")
    draw.ellipse((36, 20, 59, 43), fill="blue")
    cat, dog = Image.new("L", (64, 48)), Image.new("L", (64, 48))
    ImageDraw.Draw(cat).rectangle((4, 6, 23, 21), fill=255)
    ImageDraw.Draw(dog).ellipse((36, 20, 59, 43), fill=255)
    return image, {"cat": cat, "dog": dog}


def test_image_similarity_is_the_mean_cosine_to_the_reference():
    generated = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    reference = torch.tensor([2.0, 0.0])
    assert image_similarity(generated, reference) == pytest.approx((1 + 0 + math.sqrt(0.5)) / 3)


def test_text_similarity_pairs_each_image_with_its_own_prompt():
    images = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    texts = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    assert text_similarity(images, texts) == pytest.approx((1 + math.sqrt(0.5)) / 2)


def test_sync_is_the_absolute_difference_and_zero_for_equal_scores():
    assert synchronicity_gap([0.7, 0.7]) == 0
    assert synchronicity_gap([0.5, 0.8]) == pytest.approx(0.3)
    assert synchronicity_gap([0.8, 0.5]) == pytest.approx(0.3)
    assert synchronicity_gap([0.2, 0.9, 0.5]) == pytest.approx(0.7)


def test_plain_prompt_drops_the_placeholder_brackets():
    assert plain_prompt("<cat> on the beach") == "cat on the beach"
    assert plain_prompt("a photo of <cat> and <hot-dog>") == "a photo of cat and hot-dog"


def test_mask_box_and_the_crop_reference_use_the_box_of_the_mask():
    image, masks = two_object_picture()
    assert mask_box(masks["cat"]) == (4, 6, 24, 22)
    reference = single_concept_reference(image, masks["cat"])
    assert reference.size == (20, 16)
    assert reference.getpixel((0, 0)) == (255, 0, 0)


def test_the_crop_reference_scales_a_mask_of_another_size_to_the_image():
    image, masks = two_object_picture()
    half = masks["cat"].resize((32, 24), Image.Resampling.NEAREST)
    assert single_concept_reference(image, half).size == (20, 16)


def test_an_empty_mask_has_no_box():
    with pytest.raises(EvaluationError, match="empty"):
        mask_box(Image.new("L", (8, 8)))


def test_identical_images_score_one_with_both_encoders(tiny_clip_folder, tiny_dino_folder):
    image, _ = two_object_picture()
    for encoder in (clip_encoder(str(tiny_clip_folder)), dino_encoder(str(tiny_dino_folder))):
        embeddings = encoder.images([image, image])
        assert image_similarity(embeddings, embeddings[0]) == pytest.approx(1.0, abs=1e-6)


def test_paper_figures_score_against_the_crop_for_one_concept_and_the_whole_input_for_the_group(
    tiny_clip_folder, tiny_dino_folder
):
    image, masks = two_object_picture()
    cat, dog = (single_concept_reference(image, masks[name]) for name in ("cat", "dog"))
    samples = [
        Sample("<cat> on the beach", "cat", cat),
        Sample("<dog> on the beach", "dog", dog),
        Sample("<cat> and <dog> on the beach", None, image),
    ]
    clip, dino = clip_encoder(str(tiny_clip_folder)), dino_encoder(str(tiny_dino_folder))
    figures = paper_figures(samples, image, masks, clip=clip, dino=dino)
    metrics = figures["metrics"]
    for name in ("clip_i_single", "clip_i_group", "dino_single", "dino_group"):
        assert metrics[name] == pytest.approx(1.0, abs=1e-6), name
    assert metrics["clip_i_sync"] == pytest.approx(0.0, abs=1e-6)
    expected_t = float(clip.images([image]) @ clip.texts(["cat and dog on the beach"])[0])
    assert metrics["clip_t_group"] == pytest.approx(expected_t, abs=1e-6)

    swapped = [Sample(s.prompt, s.concept, {"cat": dog, "dog": cat}.get(s.concept, s.image)) for s in samples]
    figures = paper_figures(swapped, image, masks, clip=clip, dino=None)
    assert figures["metrics"]["clip_i_single"] < 1.0 - 1e-4
    per_concept = [figures["per_concept"][name]["clip_i"] for name in ("cat", "dog")]
    assert figures["metrics"]["clip_i_single"] == pytest.approx(sum(per_concept) / 2)
    assert figures["metrics"]["clip_i_sync"] == pytest.approx(abs(per_concept[0] - per_concept[1]))
    assert "dino_single" not in figures["metrics"]


def test_paper_figures_need_an_image_of_every_concept_and_of_the_group(tiny_clip_folder):
    image, masks = two_object_picture()
    with pytest.raises(EvaluationError, match="at least one"):
        paper_figures(
            [Sample("<cat>", "cat", image)], image, masks, clip=clip_encoder(str(tiny_clip_folder)), dino=None
        )


def test_an_encoder_that_cannot_be_loaded_is_one_sentence(tmp_path):
    with pytest.raises(EvaluationError, match="Cannot load the CLIP encoder"):
        clip_encoder(str(tmp_path / "missing"))
