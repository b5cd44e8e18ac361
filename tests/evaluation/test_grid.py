"""The grid on the tiny model with tiny encoders: one cell trained, drawn and scored; a rerun reuses it; a cell
that did not finish is run again."""

import json
import math
from dataclasses import replace

import pytest

from attencraft_cli.sample_photo import two_object_photo
from evaluation.backends import LocalBackend
from evaluation.catalog import PAPER_METRICS
from evaluation.cells import CELL_FILE, CellCache, GridSettings, Scorer
from evaluation.datasets import EvalImage
from evaluation.grid import grid_cells, run_grid
from evaluation.prompts import PromptSet

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def settings(tiny_clip_folder, tiny_dino_folder):
    return GridSettings(
        model="tiny",
        steps=2,
        prompts=PromptSet().first(1),
        images_per_prompt=1,
        sampling_steps=2,
        curve_every=1,
        clip=str(tiny_clip_folder),
        dino=str(tiny_dino_folder),
    )


@pytest.fixture(scope="module")
def cells():
    return grid_cells([EvalImage("cat_dog", two_object_photo(), ["cat", "dog"])], ["attencraft"], seeds=1)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, settings, cells):
    out = tmp_path_factory.mktemp("grid")
    return out, run_grid(cells, settings, LocalBackend("tiny", "cpu"), out, progress=False)


def test_a_cell_is_trained_drawn_and_scored(first_run, settings):
    out, run = first_run
    assert run.reused == 0
    (result,) = run.results
    assert set(result["metrics"]) == set(PAPER_METRICS)
    assert all(-1 <= value <= 1 and not math.isnan(value) for value in result["metrics"].values())
    assert result["references"] == "method"
    assert [point["step"] for point in result["curve"]] == [1, 2]
    assert set(result["curve"][0]["per_concept"]) == {"cat", "dog"}
    prompts = ["a photo of <cat>", "a photo of <dog>", "a photo of <cat> and <dog>"]
    assert [sample["prompt"] for sample in result["samples"]] == prompts
    assert [sample["concept"] for sample in result["samples"]] == ["cat", "dog", None]
    folder = out / result["folder"]
    assert len(list((folder / "samples").iterdir())) == 3
    assert sorted(path.name for path in (folder / "masks").iterdir()) == ["cat.png", "dog.png"]
    assert set(result["seconds"]) == {"train", "generate", "score"}


def test_a_rerun_reuses_the_finished_cell_without_loading_the_model(first_run, settings, cells):
    out, run = first_run
    backend = LocalBackend("tiny", "cpu")
    again = run_grid(cells, settings, backend, out, progress=False)
    assert again.reused == 1
    assert backend._model is None
    assert again.results == run.results


def test_other_settings_make_another_cell(settings, cells):
    changed = replace(settings, images_per_prompt=2)
    assert cells[0].fingerprint(changed) != cells[0].fingerprint(settings)
    assert cells[0].folder_name(changed) != cells[0].folder_name(settings)
    assert cells[0].fingerprint(replace(settings, dino="elsewhere", metrics=("clip_i_single",))) == cells[
        0
    ].fingerprint(replace(settings, metrics=("clip_i_single",)))


def test_a_cell_that_did_not_finish_is_run_again(first_run, settings, cells):
    out, run = first_run
    folder = CellCache(out).folder(cells[0], settings)
    (folder / CELL_FILE).unlink()  # as if the run was killed before the cell was complete
    scratch = folder.with_name(folder.name + ".partial")
    scratch.mkdir()
    again = run_grid(cells, settings, LocalBackend("tiny", "cpu"), out, scorer=Scorer(settings), progress=False)
    assert again.reused == 0
    assert not scratch.exists()
    assert json.loads((folder / CELL_FILE).read_text())["metrics"] == run.results[0]["metrics"]
