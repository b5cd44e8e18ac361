import json

import pytest
from PIL import Image

from evaluation.cells import GridSettings
from evaluation.report import aggregate, markdown_table, write_report

METRICS = ["clip_i_single", "clip_i_sync"]
SETTINGS = GridSettings()


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
        {"method": "a", "image": "x", "seed": 0, "metrics": {"clip_i_single": 0.5}, "seconds": {"train": 1.0}},
        {"method": "a", "image": "x", "seed": 1, "metrics": {"clip_i_single": 0.7}, "seconds": {"train": 3.0}},
        {"method": "b", "image": "x", "seed": 0, "metrics": {"clip_i_single": 0.4}, "seconds": {"train": 1.0}},
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
            },
            "cells": 1,
            "failed": 0,
        },
        "b": {
            "metrics": {
                "clip_i_single": {"mean": 0.6, "std": 0.0, "n": 1},
                "clip_i_sync": {"mean": 0.1, "std": 0.0, "n": 1},
            },
            "cells": 1,
            "failed": 0,
        },
    }
    rows = markdown_table(aggregated, METRICS).splitlines()
    assert rows[2] == "| a | **0.8000 ± 0.0000** | 0.2000 ± 0.0000 | 0 of 1 |"
    assert rows[3] == "| b | 0.6000 ± 0.0000 | **0.1000 ± 0.0000** | 0 of 1 |"


def test_the_report_has_the_issue_schema_and_non_empty_plots(tmp_path):
    results = [
        cell(tmp_path, "attencraft", 0, 0.8, 0.1),
        cell(tmp_path, "attencraft", 1, 0.6, 0.3),
        cell(tmp_path, "custom_diffusion", 0, 0.5, 0.2, curve=False),
    ]
    methods = ["attencraft", "custom_diffusion"]
    settings = GridSettings(steps=50, preset="official", prior_preservation=False)
    write_report(
        tmp_path,
        dataset="pairs",
        methods=methods,
        metrics=METRICS,
        results=results,
        how={"seeds": 2},
        settings=settings,
    )
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report) == {"dataset", "how", "settings", "methods", "cells"}
    assert report["dataset"] == "pairs" and report["how"] == {"seeds": 2}
    assert (report["settings"]["preset"], report["settings"]["prior_preservation"]) == ("official", False)
    assert report["methods"]["attencraft"]["metrics"]["clip_i_single"]["n"] == 2
    recipe = report["methods"]["custom_diffusion"]["recipe"]  # what each method trained with, settings applied
    assert (recipe["preset"], recipe["steps"], recipe["prior_preservation"]) == ("official", 50, False)
    assert len(report["cells"]) == 3
    plots = sorted(path.name for path in (tmp_path / "plots").iterdir())
    assert plots == [
        "bars_clip_i.png",
        "bars_clip_i_sync.png",
        "curves_attencraft.png",
        "masks_attencraft.png",
        "masks_custom_diffusion.png",
        "samples_attencraft_cat_dog.png",
        "samples_custom_diffusion_cat_dog.png",
    ]
    for name in plots:
        with Image.open(tmp_path / "plots" / name) as picture:
            assert picture.format == "PNG" and picture.width > 100 and picture.getextrema() != ((255, 255),) * 4
    markdown = (tmp_path / "report.md").read_text()
    assert "| attencraft | **0.7000 ± 0.1414** |" in markdown
    assert "![curves_attencraft](plots/curves_attencraft.png)" in markdown


def test_a_failed_cell_is_counted_and_named_but_not_scored(tmp_path):
    failed = {
        "method": "attencraft",
        "image": "cat_dog",
        "seed": 1,
        "concepts": ["cat", "dog"],
        "error": "The model could not find the 'cat' in the image.",
        "metrics": {},
        "curve": [],
        "seconds": {},
        "samples": [],
        "folder": "cells/attencraft-cat_dog-seed1",
    }
    results = [cell(tmp_path, "attencraft", 0, 0.8, 0.1), failed]
    report = write_report(
        tmp_path, dataset="pairs", methods=["attencraft"], metrics=METRICS, results=results, how={}, settings=SETTINGS
    )
    assert report["methods"]["attencraft"]["failed"] == 1
    assert report["methods"]["attencraft"]["metrics"]["clip_i_single"]["n"] == 1
    markdown = (tmp_path / "report.md").read_text()
    assert "- failed: attencraft cat_dog seed 1: The model could not find the 'cat'" in markdown
    assert "| attencraft | 0.8000 ± 0.0000 | 0.1000 ± 0.0000 | 1 of 2 |" in markdown


def toy_cell(method, image, identity, size=None, error=None):
    metrics = {} if error else {"identity": identity, "leakage": 0.0, **({"size_ratio": size} if size else {})}
    return {"method": method, "image": image, "seed": 0, "metrics": metrics, "seconds": {}} | (
        {"error": error} if error else {}
    )


def test_a_failed_cell_is_left_out_counted_as_zero_and_the_methods_compared_where_all_ran():
    results = [
        toy_cell("attencraft", "scene0", 0.5, size=2.0),
        toy_cell("attencraft", "scene1", 0.0, error="The model could not find the 'apple' in the image."),
        toy_cell("attencraft", "scene2", 1.0, size=1.8),
        toy_cell("custom_diffusion", "scene0", 0.25, size=1.1),
        toy_cell("custom_diffusion", "scene1", 1.0, size=0.8),
        toy_cell("custom_diffusion", "scene2", 0.75, size=0.95),
    ]
    metrics = ["identity", "leakage", "size_ratio"]

    aggregated = aggregate(results, ["attencraft", "custom_diffusion"], metrics)

    attencraft, custom = aggregated["attencraft"], aggregated["custom_diffusion"]
    assert (attencraft["failed"], attencraft["cells"], custom["failed"]) == (1, 3, 0)
    assert attencraft["metrics"]["identity"] == {"mean": 0.75, "std": pytest.approx(0.3536, abs=1e-4), "n": 2}
    assert attencraft["failed_as_zero"] == {"identity": {"mean": 0.5, "std": 0.5, "n": 3}}  # 0.5, 0, 1
    assert list(attencraft["failed_as_zero"]) == ["identity"]  # leakage and size have no "worst" to count
    assert custom["common_cells"]["identity"] == {"mean": 0.5, "std": pytest.approx(0.3536, abs=1e-4), "n": 2}
    assert custom["metrics"]["identity"]["n"] == 3
    table = markdown_table(aggregated, metrics).splitlines()
    assert table[0] == "| method | identity ↑ | leakage ↓ | size_ratio →1 | failed cells |"
    # identity: the higher is best; size_ratio: the closer to 1 (custom's 0.95 beats attencraft's 1.9)
    assert table[2].startswith("| attencraft | **0.7500 ± 0.3536** |") and table[2].endswith("| 1 of 3 |")
    assert "| **0.9500 ± 0.1500** | 0 of 3 |" in table[3]
    zeroed = markdown_table(aggregated, ["identity"], "failed_as_zero").splitlines()
    assert zeroed[0] == "| method | identity ↑ |" and zeroed[3].startswith("| custom_diffusion | **0.6667")
