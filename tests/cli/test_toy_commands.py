import json

import numpy as np
from PIL import Image

from tests.cli.run import attencraft


def test_a_scene_is_written_with_its_masks_and_the_oracle_reads_it_back(tmp_path):
    drawn = attencraft("toy", "scene", "--seed", "2", "--objects", "3", "--out", str(tmp_path / "s"), cwd=tmp_path)
    assert drawn.returncode == 0, drawn.stderr
    objects = json.loads((tmp_path / "s" / "scene.json").read_text())["objects"]
    assert len(objects) == 3
    for obj in objects:
        mask = np.asarray(Image.open(tmp_path / "s" / obj["mask"]))
        assert mask.shape == (32, 32) and set(np.unique(mask)) == {0, 255}
    judged = attencraft("toy", "judge", str(tmp_path / "s" / "image.png"), cwd=tmp_path)
    assert judged.returncode == 0, judged.stderr
    seen = json.loads(judged.stdout)["objects"]
    assert sorted((o["class"], o["identity"]) for o in seen) == sorted((o["class"], o["identity"]) for o in objects)
    assert all(o["well_formed"] for o in seen)


def test_wrong_toy_arguments_get_one_sentence_and_exit_code_2(tmp_path):
    (tmp_path / "notes.txt").write_text("not a picture")
    for arguments in (
        ("toy", "judge", str(tmp_path / "notes.txt")),
        ("toy", "scene", "--seed", "-1", "--out", str(tmp_path / "s")),
        ("toy", "scene", "--objects", "7", "--out", str(tmp_path / "s")),
        ("toy", "train-model", "--out", "o", "--work", "w", "--steps", "0"),
        ("toy", "train-model", "--out", "o", "--work", "w", "--scene-mix", "0.5", "0.5", "0.5"),
        ("toy", "train-model", "--out", "o", "--work", "w", "--start-from", str(tmp_path)),
        ("toy", "assess", "--model", "no/such/folder/x"),
        ("toy", "assess", "--walk-steps", "-1"),
    ):
        run = attencraft(*arguments, cwd=tmp_path)
        assert run.returncode == 2, (arguments, run.stderr)
        assert len(run.stderr.strip().splitlines()) <= 2 and "Traceback" not in run.stderr, run.stderr


def test_assess_prints_the_base_models_figures_over_the_scenes_and_samples_asked(tmp_path):
    run = attencraft("toy", "assess", "--scenes", "2", "--samples", "2", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    masks_line, samples_line = run.stdout.strip().splitlines()
    assert masks_line.startswith("stage-one mask IoU over 2 scenes (random walk of 2 steps): first concept 0.")
    assert "a concept not localised in 0 scenes" in masks_line
    assert samples_line.startswith("samples showing their class (2 per prompt): ")


def test_assess_makes_the_masks_with_the_walk_length_asked(tmp_path):
    run = attencraft("toy", "assess", "--scenes", "1", "--samples", "1", "--walk-steps", "4", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("stage-one mask IoU over 1 scenes (random walk of 4 steps): ")
