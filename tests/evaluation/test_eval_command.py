"""`attencraft eval` end to end on a small toy grid: the report, its plots, and a rerun that reuses every cell."""

import json

import pytest
from PIL import Image

from evaluation.catalog import PAPER_METRICS, TOY_METRICS
from tests.cli.run import attencraft

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

SMALL = ["--seeds", "1", "--steps", "2", "--prompts", "1", "--images-per-prompt", "1", "--sampling-steps", "2"]


def encoders(clip, dino):
    return ["--clip", str(clip), "--dino", str(dino)]


def test_a_toy_grid_writes_the_report_with_plots_and_a_rerun_reuses_every_cell(
    tmp_path, tiny_clip_folder, tiny_dino_folder
):
    out = tmp_path / "eval"
    command = ["eval", "toy", "--scenes", "1", *SMALL, "--curve-every", "1", "--model", "tiny", "--out", str(out)]
    command += ["--methods", "attencraft,custom_diffusion", "--no-prior-preservation"]  # no 200 class images
    command += [*encoders(tiny_clip_folder, tiny_dino_folder), "--no-progress"]
    first = attencraft(*command, cwd=tmp_path, timeout_s=1500)
    assert first.returncode == 0, first.stderr
    assert "2 cells (2 run, 0 reused)" in first.stdout

    report = json.loads((out / "report.json").read_text())
    assert set(report) == {"dataset", "how", "settings", "methods", "cells"}
    assert report["settings"]["prior_preservation"] is False and report["how"]["prior preservation"] == "off"
    custom = report["methods"]["custom_diffusion"]
    assert (custom["recipe"]["prior_preservation"], custom["recipe"]["steps"], custom["failed"]) == (False, 2, 0)
    figures = report["methods"]["attencraft"]["metrics"]
    drawn = [] if "size_ratio" in figures else ["size_ratio"]  # absent when no sample drew a concept's class
    assert list(figures) + drawn == list(PAPER_METRICS + TOY_METRICS)
    assert all(set(figure) == {"mean", "std", "n"} and figure["n"] == 1 for figure in figures.values())
    assert "mask_iou" not in custom["metrics"] and "identity" in custom["metrics"]
    cell, custom_cell = report["cells"]
    assert (cell["method"], cell["image"], cell["seed"]) == ("attencraft", "scene0", 0)
    assert custom_cell["method"] == "custom_diffusion"
    assert cell["references"] == "dataset"
    assert 0 <= cell["metrics"]["mask_iou"] <= 1 and cell["metrics"]["identity"] in (0.0, 0.5, 1.0)
    assert [point["step"] for point in cell["curve"]] == [1, 2]

    plots = sorted((out / "plots").glob("*.png"))
    assert {path.stem for path in plots} == {
        "bars_clip_i",
        "bars_clip_t",
        "bars_dino",
        "bars_clip_i_sync",
        "bars_toy",
        "bars_size_ratio",
        "curves_attencraft",
        "curves_custom_diffusion",
        "masks_attencraft",
        "samples_attencraft_scene0",
        "samples_custom_diffusion_scene0",
    }
    for path in plots:
        with Image.open(path) as picture:
            assert picture.format == "PNG" and picture.width > 100
    markdown = (out / "report.md").read_text()
    assert "| attencraft |" in markdown and "mask_iou ↑" in markdown and "leakage ↓" in markdown
    assert "| 0 of 1 |" in markdown and "- prior preservation: off" in markdown

    cell_file = out / cell["folder"] / "cell.json"
    written = cell_file.stat().st_mtime_ns
    again = attencraft(*command, cwd=tmp_path, timeout_s=600)
    assert again.returncode == 0, again.stderr
    assert "2 cells (0 run, 2 reused)" in again.stdout
    assert cell_file.stat().st_mtime_ns == written
    assert json.loads((out / "report.json").read_text())["cells"] == report["cells"]
