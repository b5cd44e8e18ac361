import numpy as np
import pytest

from toyworld.scenes import (
    CLASSES,
    HELD_OUT_SEEDS,
    SIZE,
    ToyObject,
    held_out_scene,
    random_scene,
    render_scene,
    shade_colour,
    shape_coverage,
)


def test_a_rendered_object_has_its_colour_inside_its_mask_and_background_outside():
    apple = ToyObject("apple", "dark", centre=(16.0, 16.0), radius=7.0, rotation=0.0)
    scene = render_scene((apple,), background=180.0)
    inside = scene.image[scene.masks[0] & ~np.roll(~scene.masks[0], 1, axis=0)]
    assert np.allclose(scene.image[16, 16], shade_colour(CLASSES["apple"].colour, "dark"), atol=1)
    assert (scene.image[0, 0] == 180).all()
    assert len(inside) > 0
    assert scene.masks[0].sum() == pytest.approx(np.pi * 7.0**2, rel=0.1)


@pytest.mark.parametrize(("shape", "area_per_r2"), [("disc", np.pi), ("triangle", 3 * np.sqrt(3) / 4), ("square", 2.0)])
def test_shape_coverage_has_the_area_of_the_shape(shape, area_per_r2):
    coverage = shape_coverage(shape, (16.0, 16.0), 8.0, 0.3)
    assert coverage.sum() == pytest.approx(area_per_r2 * 64, rel=0.02)
    assert coverage.min() >= 0 and coverage.max() <= 1


def test_shades_keep_the_hue_and_order_the_brightness():
    pale, normal, dark = (shade_colour(CLASSES["box"].colour, s) for s in ("pale", "normal", "dark"))
    assert pale.sum() > normal.sum() > dark.sum()


def test_objects_of_a_scene_never_overlap_and_stay_inside():
    rng = np.random.default_rng(5)
    for _ in range(40):
        scene = random_scene(rng, 3)
        total = np.sum([mask.astype(int) for mask in scene.masks], axis=0)
        assert total.max() <= 1
        assert all(mask.sum() > 20 for mask in scene.masks)
        assert len({obj.class_name for obj in scene.objects}) == 3
        assert scene.image.shape == (SIZE, SIZE, 3)


def test_held_out_scenes_are_reproducible_two_object_scenes_from_their_own_seeds():
    first, again = held_out_scene(3), held_out_scene(3)
    assert (first.image == again.image).all()
    assert len(first.objects) == 2
    assert not (held_out_scene(4).image == first.image).all()
    assert HELD_OUT_SEEDS >= 10**9


def test_the_caption_names_classes_in_the_cores_prompt_form_and_never_the_shade():
    scene = held_out_scene(0)
    caption = scene.caption()
    assert caption == f"a photo of {scene.objects[0].class_name} and {scene.objects[1].class_name}"
    assert not any(shade in caption for shade in ("pale", "normal", "dark"))
