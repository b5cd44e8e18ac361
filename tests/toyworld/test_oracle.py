import numpy as np

from toyworld.measures import mask_iou
from toyworld.oracle import read_picture
from toyworld.scenes import ToyObject, held_out_scenes, render_scene


def test_the_oracle_reads_every_object_of_held_out_scenes_right():
    scenes = held_out_scenes(40)
    wrong = []
    for index, scene in enumerate(scenes):
        seen = read_picture(scene.image)
        for obj, truth in zip(scene.objects, scene.masks, strict=True):
            match = [s for s in seen if s.class_name == obj.class_name and s.shade == obj.shade and s.well_formed]
            if len(seen) != 2 or not match or mask_iou(match[0].mask, truth) < 0.7:
                wrong.append(index)
    assert wrong == []


def test_a_blank_picture_shows_nothing():
    assert read_picture(np.full((32, 32, 3), 170, dtype=np.uint8)) == []


def test_merged_and_oversized_objects_are_not_well_formed():
    touching = render_scene(
        (ToyObject("apple", "normal", (10.0, 16.0), 6.0, 0.0), ToyObject("apple", "normal", (21.0, 16.0), 6.0, 0.0))
    )
    (merged,) = read_picture(touching.image)
    assert not merged.well_formed
    (huge,) = read_picture(render_scene((ToyObject("bubble", "pale", (16.0, 16.0), 15.0, 0.0),)).image)
    assert huge.class_name == "bubble" and not huge.well_formed


def test_the_oracle_names_the_best_fitting_shape():
    (seen,) = read_picture(render_scene((ToyObject("box", "normal", (16.0, 16.0), 8.0, 0.4),)).image)
    assert seen.best_shape == "square"


def test_noise_specks_are_not_objects():
    picture = np.full((32, 32, 3), 170, dtype=np.uint8)
    picture[3:5, 3:5] = (220, 30, 30)
    assert read_picture(picture) == []
