import json

from tests.cli.run import attencraft


def test_a_scene_is_written_with_its_masks_and_the_oracle_reads_it_back(tmp_path):
    drawn = attencraft("toy", "scene", "2", "--out", str(tmp_path / "scene"), cwd=tmp_path)
    assert drawn.returncode == 0, drawn.stderr
    objects = json.loads((tmp_path / "scene" / "scene.json").read_text())["objects"]
    assert len(objects) == 2
    for obj in objects:
        assert (tmp_path / "scene" / f"mask_{obj['class']}.png").is_file()
    judged = attencraft("toy", "judge", str(tmp_path / "scene" / "photo.png"), cwd=tmp_path)
    assert judged.returncode == 0, judged.stderr
    for obj in objects:
        assert f"{obj['shade']} {obj['class']}" in judged.stdout
    assert "malformed" not in judged.stdout


def test_wrong_toy_arguments_get_one_sentence_and_exit_code_2(tmp_path):
    (tmp_path / "notes.txt").write_text("not a picture")
    for arguments in (
        ("toy", "judge", str(tmp_path / "notes.txt")),
        ("toy", "scene", "-1", "--out", str(tmp_path / "s")),
        ("toy", "train-model", "--out", "o", "--work", "w", "--steps", "0"),
        ("toy", "assess", "--model", "no/such/folder/x"),
    ):
        run = attencraft(*arguments, cwd=tmp_path)
        assert run.returncode == 2, (arguments, run.stderr)
        assert len(run.stderr.strip().splitlines()) <= 2 and "Traceback" not in run.stderr, run.stderr
