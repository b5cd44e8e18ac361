"""`attencraft eval` given wrong input: one sentence, exit 2, torch never imported, nothing a rerun would trust."""

import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from tests.cli.run import ROOT

CLOSED_PORT_URL = "http://127.0.0.1:9"  # the discard port: nothing listens there
RUN = """
import sys
from attencraft_cli.main import main
try:
    code = main(sys.argv[1:])
except SystemExit as leaving:
    code = leaving.code
print(code, "torch" in sys.modules)
"""


def attencraft_eval(*arguments, cwd):
    environment = {name: value for name, value in os.environ.items() if not name.startswith("ATTENCRAFT_")}
    return subprocess.run(
        [sys.executable, "-c", RUN, "eval", *arguments],
        cwd=cwd,
        env={**environment, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def dataset(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    Image.new("RGB", (32, 32), "green").save(folder / "cat_dog.png")
    return folder


CASES = {
    "unknown method": (["{data}", "--methods", "attencraft,nope"], "Unknown method nope; choose from attencraft"),
    "unknown metric": (["{data}", "--metrics", "clip_i_single,clip_q"], "Unknown metric clip_q"),
    "no seeds": (["{data}", "--seeds", "0"], "argument --seeds: 0 is not at least 1"),
    "no images": (["{empty}"], "holds no images"),
    "no concept names": (["{unnamed}"], "no usable concept names"),
    "not a dataset": (["{data}/nowhere"], "neither `toy` nor a folder"),
    "missing encoder folder": (["{data}", "--clip", "{data}/no-clip"], "--clip {data}/no-clip is not a model folder"),
    "bad prompt file": (["{data}", "--prompt-file", "{data}/cat_dog.png"], "Cannot read the prompt file"),
    "unknown model": (["{data}", "--model", "nope"], "is neither a built-in model"),
    "unknown preset": (["{data}", "--preset", "paper"], "argument --preset: invalid choice: 'paper'"),
    "service without key": (["{data}", "--service", CLOSED_PORT_URL], "Give an API key"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_wrong_input_is_one_sentence_and_exit_2_before_torch(tmp_path, dataset, case):
    empty = tmp_path / "empty"
    empty.mkdir()
    unnamed = tmp_path / "unnamed"
    unnamed.mkdir()
    Image.new("RGB", (32, 32)).save(unnamed / "photo.png")
    arguments, says = CASES[case]
    names = {"data": dataset, "empty": empty, "unnamed": unnamed}
    out = tmp_path / "out"
    result = attencraft_eval(*(a.format(**names) for a in arguments), "--out", str(out), cwd=tmp_path)
    assert result.stdout.split() == ["2", "False"], result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and says.format(**names) in line
    assert not out.exists()


def test_an_unreachable_service_is_one_sentence(tmp_path, dataset):
    out = tmp_path / "out"
    result = attencraft_eval(
        str(dataset), "--service", CLOSED_PORT_URL, "--key", "ak_x", "--out", str(out), cwd=tmp_path
    )
    assert result.stdout.split()[0] == "2"
    assert "cannot be reached" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_an_output_folder_with_other_files_is_refused(tmp_path, dataset):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = attencraft_eval(str(dataset), "--out", str(out), cwd=tmp_path)
    assert result.stdout.split() == ["2", "False"]
    assert "holds other files" in result.stderr
    assert json.dumps(sorted(p.name for p in out.iterdir())) == '["notes.txt"]'


def test_eval_is_listed_with_its_defaults(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "attencraft_cli.main", "eval", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0
    for text in (
        "openai/clip-vit-large-patch14",
        "facebook/dinov2-base",
        "--service",
        "--images-per-prompt",
        "--preset {attencraft_comparison,official}",
        "--no-prior-preservation",
    ):
        assert text in result.stdout
