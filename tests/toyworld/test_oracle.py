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


def test_a_class_colour_in_the_wrong_shape_is_malformed():
    # A square in the apple's red: colour says apple, but apples are discs.
    square_apple = render_scene((ToyObject("box", "normal", (16.0, 16.0), 8.0, 0.4),)).image.copy()
    blue = np.all(square_apple == square_apple[16, 16], axis=2)
    square_apple[blue] = (220, 30, 30)
    (seen,) = read_picture(square_apple)
    assert seen.class_name == "apple"
    assert not seen.well_formed


def test_noise_specks_are_not_objects():
    picture = np.full((32, 32, 3), 170, dtype=np.uint8)
    picture[3:5, 3:5] = (220, 30, 30)
    assert read_picture(picture) == []
