import json

import pytest
from PIL import Image

from evaluation.report import aggregate, markdown_table, write_report

METRICS = ["clip_i_single", "clip_i_sync"]


def cell(out, method, seed, clip_i, sync, curve=True):
    folder = out / "cells" / f"{method}-cat_dog-seed{seed}"
    (folder / "samples").mkdir(parents=True)
    (folder / "masks").mkdir()
    Image.new("RGB", (16, 16), "white").save(folder / "input.png")
    for index, (concept, box) in enumerate([("cat", (0, 0, 8, 8)), ("dog", (8, 8, 16, 16))]):
        mask = Image.new("L", (16, 16))
        mask.paste(255, box)
        mask.save(folder / "masks" / f"{concept}.png")
        Image.new("RGB", (16, 16), (40 * index, 0, 0)).save(folder / "samples" / f"{index}.png")
    samples = [
        {"file": "samples/0.png", "prompt": "<cat> on the beach", "concept": "cat", "seed": seed},
        {"file": "samples/1.png", "prompt": "<cat> and <dog> on the beach", "concept": None, "seed": seed},
    ]
    points = [
        {"step": step, "per_concept": {"cat": {"clip_i": 0.1 * step}, "dog": {"clip_i": 0.2}}, "group": {"clip_i": 0.3}}
        for step in (1, 2)
    ]
    return {
        "method": method,
        "image": "cat_dog",
        "seed": seed,
        "concepts": ["cat", "dog"],
        "metrics": {"clip_i_single": clip_i, "clip_i_sync": sync},
        "curve": points if curve else [],
        "seconds": {"train": 2.0, "generate": 1.0, "score": 0.5},
        "samples": samples,
        "folder": str(folder.relative_to(out)),
    }


def test_aggregate_gives_mean_sample_std_and_count_per_method_and_metric():
    results = [
        {"method": "a", "metrics": {"clip_i_single": 0.5}, "seconds": {"train": 1.0}},
        {"method": "a", "metrics": {"clip_i_single": 0.7}, "seconds": {"train": 3.0}},
        {"method": "b", "metrics": {"clip_i_single": 0.4}, "seconds": {"train": 1.0}},
    ]
    aggregated = aggregate(results, ["a", "b"], ["clip_i_single"])
    assert aggregated["a"]["metrics"]["clip_i_single"] == {
        "mean": pytest.approx(0.6),
        "std": pytest.approx(0.1414, abs=1e-4),
        "n": 2,
    }
    assert aggregated["b"]["metrics"]["clip_i_single"] == {"mean": 0.4, "std": 0.0, "n": 1}
    assert aggregated["a"]["seconds_per_cell"] == {"train": 2.0}


def test_the_table_marks_the_highest_score_and_the_lowest_sync():
    aggregated = {
        "a": {
            "metrics": {
                "clip_i_single": {"mean": 0.8, "std": 0.0, "n": 1},
                "clip_i_sync": {"mean": 0.2, "std": 0.0, "n": 1},
            }
        },
        "b": {
            "metrics": {
                "clip_i_single": {"mean": 0.6, "std": 0.0, "n": 1},
                "clip_i_sync": {"mean": 0.1, "std": 0.0, "n": 1},
            }
        },
    }
    rows = markdown_table(aggregated, METRICS).splitlines()
    assert rows[2] == "| a | **0.8000 ± 0.0000** | 0.2000 ± 0.0000 |"
    assert rows[3] == "| b | 0.6000 ± 0.0000 | **0.1000 ± 0.0000** |"


def test_the_report_has_the_issue_schema_and_non_empty_plots(tmp_path):
    results = [
        cell(tmp_path, "a", 0, 0.8, 0.1),
        cell(tmp_path, "a", 1, 0.6, 0.3),
        cell(tmp_path, "b", 0, 0.5, 0.2, curve=False),
    ]
    write_report(tmp_path, dataset="pairs", methods=["a", "b"], metrics=METRICS, results=results, how={"seeds": 2})
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report) == {"dataset", "methods", "cells"}
    assert report["dataset"] == "pairs"
    assert report["methods"]["a"]["metrics"]["clip_i_single"]["n"] == 2
    assert len(report["cells"]) == 3
    plots = sorted(path.name for path in (tmp_path / "plots").iterdir())
    assert plots == [
        "bars_clip_i.png",
        "bars_clip_i_sync.png",
        "curves_a.png",
        "masks_a.png",
        "masks_b.png",
        "samples_a_cat_dog.png",
        "samples_b_cat_dog.png",
    ]
    for name in plots:
        with Image.open(tmp_path / "plots" / name) as picture:
            assert picture.format == "PNG" and picture.width > 100 and picture.getextrema() != ((255, 255),) * 4
    markdown = (tmp_path / "report.md").read_text()
    assert "| a | **0.7000 ± 0.1414** |" in markdown
    assert "![curves_a](plots/curves_a.png)" in markdown


def test_a_failed_cell_is_counted_and_named_but_not_scored(tmp_path):
    failed = {
        "method": "a",
        "image": "cat_dog",
        "seed": 1,
        "concepts": ["cat", "dog"],
        "error": "The model could not find the 'cat' in the image.",
        "metrics": {},
        "curve": [],
        "seconds": {},
        "samples": [],
        "folder": "cells/a-cat_dog-seed1",
    }
    results = [cell(tmp_path, "a", 0, 0.8, 0.1), failed]
    report = write_report(tmp_path, dataset="pairs", methods=["a"], metrics=METRICS, results=results, how={})
    assert report["methods"]["a"]["failed"] == 1
    assert report["methods"]["a"]["metrics"]["clip_i_single"]["n"] == 1
    assert "- failed: a cat_dog seed 1: The model could not find the 'cat'" in (tmp_path / "report.md").read_text()
