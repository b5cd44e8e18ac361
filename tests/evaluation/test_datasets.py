import json

import pytest
from PIL import Image, ImageDraw

from evaluation.datasets import folder_dataset
from evaluation.errors import EvaluationError


def photo(path, size=(40, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, "green").save(path)
    return path


def mask(path, box, size=(40, 30)):
    picture = Image.new("L", size)
    ImageDraw.Draw(picture).rectangle(box, fill=255)
    picture.save(path)


def test_concepts_come_from_the_folder_or_file_name_in_name_order(tmp_path):
    photo(tmp_path / "cat_dog" / "image.jpg")
    photo(tmp_path / "boot_backpack_hat.png")
    images = folder_dataset(tmp_path)
    assert [(image.name, image.concepts) for image in images] == [
        ("boot_backpack_hat", ["boot", "backpack", "hat"]),
        ("cat_dog", ["cat", "dog"]),
    ]
    assert images[1].masks == {}


def test_an_image_folder_is_a_dataset_of_one(tmp_path):
    photo(tmp_path / "cow_bird" / "image.png")
    assert [image.concepts for image in folder_dataset(tmp_path / "cow_bird")] == [["cow", "bird"]]


def test_masks_named_by_concept_are_read(tmp_path):
    photo(tmp_path / "cat_dog" / "image.png")
    mask(tmp_path / "cat_dog" / "mask_cat.png", (0, 0, 9, 9))
    mask(tmp_path / "cat_dog" / "mask_dog.png", (20, 10, 29, 19))
    (image,) = folder_dataset(tmp_path)
    assert list(image.masks) == ["cat", "dog"]
    assert image.masks["dog"].getbbox() == (20, 10, 30, 20)


def test_a_manifest_names_concepts_and_masks_in_any_order(tmp_path):
    folder = tmp_path / "pair"
    photo(folder / "image.png")
    mask(folder / "mask0.png", (0, 0, 9, 9))
    mask(folder / "mask1.png", (20, 10, 29, 19))
    (folder / "manifest.json").write_text(
        json.dumps({"concepts": ["dog", "bear"], "masks": {"bear": "mask0.png", "dog": "mask1.png"}})
    )
    (image,) = folder_dataset(tmp_path)
    assert image.concepts == ["dog", "bear"]
    assert image.masks["bear"].getbbox() == (0, 0, 10, 10)


def test_a_manifest_given_apart_describes_images_by_name(tmp_path):
    photo(tmp_path / "data" / "dog_bear" / "image.png")
    mask(tmp_path / "data" / "dog_bear" / "mask0.png", (0, 0, 9, 9))
    mask(tmp_path / "data" / "dog_bear" / "mask1.png", (20, 10, 29, 19))
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"dog_bear": {"masks": {"bear": "mask0.png", "dog": "mask1.png"}}}))
    (image,) = folder_dataset(tmp_path / "data", manifest)
    assert image.concepts == ["dog", "bear"]
    assert image.masks["bear"].getbbox() == (0, 0, 10, 10)
    assert folder_dataset(tmp_path / "data")[0].masks == {}


def test_the_digest_changes_with_pixels_concepts_and_masks(tmp_path):
    photo(tmp_path / "cat_dog" / "image.png")
    first = folder_dataset(tmp_path)[0].digest()
    assert folder_dataset(tmp_path)[0].digest() == first
    mask(tmp_path / "cat_dog" / "mask_cat.png", (0, 0, 9, 9))
    mask(tmp_path / "cat_dog" / "mask_dog.png", (20, 10, 29, 19))
    assert folder_dataset(tmp_path)[0].digest() != first


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda root: root.mkdir(), "holds no images"),
        (lambda root: photo(root / "photos" / "image.png"), "no usable concept names"),
        (lambda root: photo(root / "cat_cat.png"), "no usable concept names"),
        (lambda root: (photo(root / "cat_dog" / "a.png"), photo(root / "cat_dog" / "b.png")), "exactly one image"),
        (
            lambda root: (photo(root / "cat_dog" / "image.png"), mask(root / "cat_dog" / "mask_cat.png", (0, 0, 5, 5))),
            "not for all",
        ),
        (
            lambda root: (photo(root / "cat_dog" / "image.png"), (root / "cat_dog" / "manifest.json").write_text("{")),
            "Cannot read the manifest",
        ),
    ],
)
def test_a_dataset_that_cannot_be_evaluated_is_one_sentence(tmp_path, make, says):
    root = tmp_path / "data"
    make(root)
    with pytest.raises(EvaluationError, match=says):
        folder_dataset(root)


def test_a_dataset_that_is_not_a_folder_is_refused(tmp_path):
    with pytest.raises(EvaluationError, match="neither `toy` nor a folder"):
        folder_dataset(tmp_path / "nowhere")
