"""`attencraft train` and `attencraft generate` as a user runs them: real processes on the tiny model."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from attencraft_cli.sample_photo import two_object_photo

DATASETS = Path(__file__).resolve().parents[3] / "shared" / "datasets"
STEPS = "6"


def attencraft(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "attencraft_cli.main", *arguments],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )


def saved_photo(path: Path) -> Path:
    two_object_photo().save(path)
    return path


def train_then_generate(image: Path, concepts: tuple[str, str], tmp_path: Path) -> None:
    out = tmp_path / "concepts"
    trained = attencraft(
        "train",
        str(image),
        "--concept",
        concepts[0],
        "--concept",
        concepts[1],
        "--steps",
        STEPS,
        "--out",
        str(out),
        cwd=tmp_path,
    )
    assert trained.returncode == 0, trained.stderr
    assert f"Learned <{concepts[0]}>, <{concepts[1]}> on tiny" in trained.stdout
    assert "sampling ratio" in trained.stdout and "loss curve:" in trained.stdout
    assert "training" in trained.stderr  # the progress bar names its stages
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["placeholders"] == [f"<{concepts[0]}>", f"<{concepts[1]}>"]
    assert len((out / "loss_curve.csv").read_text().splitlines()) == 1 + int(STEPS)
    for index, name in enumerate(concepts):
        with Image.open(out / f"mask_{index}_{name}.png") as mask:
            assert mask.size == (256, 256)

    picture = tmp_path / "scene.png"
    prompt = f"<{concepts[0]}> and <{concepts[1]}> in Paris"
    generated = attencraft(
        "generate", "--concepts", str(out), "--prompt", prompt, "--steps", "3", "--out", str(picture), cwd=tmp_path
    )
    assert generated.returncode == 0, generated.stderr
    with Image.open(picture) as image_file:
        assert image_file.size == (256, 256)


@pytest.mark.slow
def test_train_and_generate_on_a_generated_two_object_image(tmp_path):
    train_then_generate(saved_photo(tmp_path / "photo.png"), ("ball", "box"), tmp_path)


@pytest.mark.slow
@pytest.mark.skipif(not (DATASETS / "cat_dog" / "image.jpg").is_file(), reason="shared/datasets is not present")
def test_train_and_generate_on_a_real_photo(tmp_path):
    train_then_generate(DATASETS / "cat_dog" / "image.jpg", ("cat", "dog"), tmp_path)


@pytest.mark.slow
def test_the_progress_bar_names_break_a_scenes_two_stages(tmp_path):
    common = ["--concept", "cat", "--concept", "dog", "--steps", "3", "--no-prior-preservation"]
    photo = str(saved_photo(tmp_path / "p.png"))
    trained = attencraft(
        "train", photo, *common, "--method", "break_a_scene", "--out", str(tmp_path / "bas"), cwd=tmp_path
    )
    assert trained.returncode == 0, trained.stderr
    assert "training identifiers (1/2)" in trained.stderr and "training identifiers+kv (2/2)" in trained.stderr


@pytest.fixture(scope="module")
def learned(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("learned")
    out = folder / "concepts"
    result = attencraft(
        "train",
        str(saved_photo(folder / "p.png")),
        "--concept",
        "cat",
        "--concept",
        "dog",
        "--steps",
        "1",
        "--out",
        str(out),
        cwd=folder,
    )
    assert result.returncode == 0, result.stderr
    return out


BAD_TRAINING = {
    "unreadable image": (["train", "{not_an_image}", "--concept", "cat", "--concept", "dog"], "not an image"),
    "missing image": (["train", "{missing}", "--concept", "cat", "--concept", "dog"], "no file"),
    "one concept": (["train", "{photo}", "--concept", "cat"], "between 2 and 8 concepts"),
    "duplicate names": (["train", "{photo}", "--concept", "cat", "--concept", "Cat"], "must differ"),
    "bad initializer": (
        ["train", "{photo}", "--concept", "cat", "--concept", "dog", "--initializer", "cow"],
        "NAME=WORD",
    ),
}


@pytest.mark.parametrize("case", BAD_TRAINING, ids=list(BAD_TRAINING))
def test_bad_training_input_is_one_clear_sentence(tmp_path, case):
    arguments, expected = BAD_TRAINING[case]
    (tmp_path / "notes.png").write_text("not an image")
    places = {
        "not_an_image": str(tmp_path / "notes.png"),
        "missing": str(tmp_path / "nope.jpg"),
        "photo": str(saved_photo(tmp_path / "photo.png")),
    }
    result = attencraft(*[a.format(**places) for a in arguments], "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_placeholder_that_was_not_learned_is_refused(tmp_path, learned):
    result = attencraft(
        "generate",
        "--concepts",
        str(learned),
        "--prompt",
        "<cow> on the beach",
        "--out",
        str(tmp_path / "x.png"),
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: The prompt names <cow>, which these concepts did not learn; known placeholders: <cat>, <dog>."
    )
    assert not (tmp_path / "x.png").exists()


def test_a_folder_without_concepts_is_refused(tmp_path):
    result = attencraft("generate", "--concepts", str(tmp_path), "--prompt", "<cat>", "--out", "x.png", cwd=tmp_path)
    assert result.returncode == 2
    assert "holds no concept set" in result.stderr and "Traceback" not in result.stderr
