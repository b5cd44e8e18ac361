"""What an evaluation leaves in OUT: report.json (figures per method and per cell), report.md (the method x metric
table and how it was run) and plots/ (bar charts per metric family, learning curves, sample grids, mask overlays)."""

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image

from attencraft_core.images import mask_overlay
from evaluation.catalog import BEST_AT_ONE, FAILED_COUNTS_AS_ZERO, FAMILIES, LOWER_IS_BETTER
from evaluation.cells import GridSettings

CURVE_MEASURES = ("clip_i", "dino", "identity")  # the first one a cell's curve has is drawn, per concept
THUMBNAIL = 1.3  # inches per sample in a grid


def _figure(*grid: int, figsize: tuple[float, float], squeeze: bool = True) -> tuple[Figure, Any]:
    """A figure and its axes (pyplot-free: no global state, any thread)."""
    figure = Figure(figsize=figsize)
    return figure, figure.subplots(*grid, squeeze=squeeze)


def summary(values: Sequence[float]) -> dict[str, float | int]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "n": len(values),
    }


def _figures(cells: Sequence[dict[str, Any]], metrics: Sequence[str]) -> dict[str, Any]:
    figures = {}
    for name in metrics:
        values = [cell["metrics"][name] for cell in cells if name in cell["metrics"]]
        if values:
            figures[name] = summary(values)
    return figures


def aggregate(results: Sequence[dict[str, Any]], methods: Sequence[str], metrics: Sequence[str]) -> dict[str, Any]:
    """{METHOD: {"metrics": {NAME: {"mean", "std", "n"}} over the cells that ran, "failed_as_zero": the same with
    each failed cell counted as 0 (FAILED_COUNTS_AS_ZERO), "common_cells": over the (image, seed) cells every
    method ran (several methods only), "cells": count, "failed": count, "seconds_per_cell": mean per stage}}."""
    failed_somewhere = {(cell["image"], cell["seed"]) for cell in results if "error" in cell}
    zero_when_failed = [name for name in metrics if name in FAILED_COUNTS_AS_ZERO]
    aggregated = {}
    for method in methods:
        cells = [result for result in results if result["method"] == method]
        failed = sum("error" in cell for cell in cells)
        stages = list(dict.fromkeys(stage for cell in cells for stage in cell["seconds"]))  # in the cells' order
        seconds = {stage: statistics.fmean(cell["seconds"].get(stage, 0.0) for cell in cells) for stage in stages}
        zeroed = [cell if "error" not in cell else {"metrics": dict.fromkeys(zero_when_failed, 0.0)} for cell in cells]
        common = [cell for cell in cells if (cell["image"], cell["seed"]) not in failed_somewhere]
        aggregated[method] = {
            "metrics": _figures(cells, metrics),
            "failed_as_zero": _figures(zeroed, zero_when_failed),
            **({"common_cells": _figures(common, metrics)} if len(methods) > 1 else {}),
            "cells": len(cells),
            "failed": failed,
            "seconds_per_cell": seconds,
        }
    return aggregated


def best_methods(aggregated: dict[str, Any], name: str, figures: str = "metrics") -> set[str]:
    means = {method: entry[figures][name]["mean"] for method, entry in aggregated.items() if name in entry[figures]}
    if not means:
        return set()
    if name in BEST_AT_ONE:
        best = min(abs(mean - 1) for mean in means.values())
        return {method for method, mean in means.items() if abs(mean - 1) == best}
    pick = min if name in LOWER_IS_BETTER else max
    best = pick(means.values())
    return {method for method, mean in means.items() if mean == best}


def _arrow(name: str) -> str:
    return "→1" if name in BEST_AT_ONE else "↓" if name in LOWER_IS_BETTER else "↑"


def markdown_table(aggregated: dict[str, Any], metrics: Sequence[str], figures: str = "metrics") -> str:
    """Method x metric, mean ± std of `figures` (an entry of aggregate's), best in bold; the main table (figures
    "metrics") ends with each method's failed cells."""
    failed_column = figures == "metrics"
    lines = [
        "| method | "
        + " | ".join([f"{name} {_arrow(name)}" for name in metrics] + ["failed cells"] * failed_column)
        + " |",
        "|---|" + "---:|" * (len(metrics) + failed_column),
    ]
    best = {name: best_methods(aggregated, name, figures) for name in metrics}
    for method, entry in aggregated.items():
        cells = []
        for name in metrics:
            figure = entry[figures].get(name)
            if figure is None:
                cells.append("–")
                continue
            text = f"{figure['mean']:.4f} ± {figure['std']:.4f}"
            cells.append(f"**{text}**" if method in best[name] and len(aggregated) > 1 else text)
        if failed_column:
            cells.append(f"{entry['failed']} of {entry['cells']}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bar_charts(aggregated: dict[str, Any], metrics: Sequence[str], folder: Path) -> list[Path]:
    paths = []
    methods = list(aggregated)
    for family, names in FAMILIES.items():
        shown = [name for name in names if name in metrics]
        if not shown:
            continue
        figure, axes = _figure(figsize=(1.6 + 1.4 * len(shown) * max(len(methods), 1) / 2, 3.2))
        width = 0.8 / len(methods)
        for index, method in enumerate(methods):
            entries = [aggregated[method]["metrics"].get(name, {"mean": np.nan, "std": 0}) for name in shown]
            positions = np.arange(len(shown)) + (index - (len(methods) - 1) / 2) * width
            axes.bar(
                positions,
                [e["mean"] for e in entries],
                width,
                yerr=[e["std"] for e in entries],
                capsize=3,
                label=method,
            )
        axes.set_xticks(np.arange(len(shown)), shown)
        axes.set_title(family + (" (lower is better)" if all(n in LOWER_IS_BETTER for n in shown) else ""))
        axes.legend(fontsize=7)
        figure.tight_layout()
        path = folder / f"bars_{family}.png"
        figure.savefig(path, dpi=110)
        paths.append(path)
    return paths


def _curve_measure(cells: Sequence[dict[str, Any]]) -> str | None:
    for measure in CURVE_MEASURES:
        if all(
            measure in point["per_concept"][concept]
            for cell in cells
            for point in cell["curve"]
            for concept in cell["concepts"]
        ):
            return measure
    return None


def learning_curves(results: Sequence[dict[str, Any]], methods: Sequence[str], folder: Path) -> list[Path]:
    """Per method: one panel per image, the single-concept score of each concept (mean over seeds) by step."""
    paths = []
    for method in methods:
        cells = [cell for cell in results if cell["method"] == method and cell["curve"]]
        measure = _curve_measure(cells)
        if not cells or measure is None:
            continue
        images = sorted({cell["image"] for cell in cells})
        figure, axes = _figure(1, len(images), figsize=(max(4.8, 3.4 * len(images)), 3.0), squeeze=False)
        for axis, image in zip(axes[0], images, strict=True):
            of_image = [cell for cell in cells if cell["image"] == image]
            steps = [point["step"] for point in of_image[0]["curve"]]
            for concept in of_image[0]["concepts"]:
                values = np.mean([[p["per_concept"][concept][measure] for p in c["curve"]] for c in of_image], axis=0)
                axis.plot(steps, values, marker="o", label=concept)
            group = np.mean([[p["group"][measure] for p in c["curve"]] for c in of_image], axis=0)
            axis.plot(steps, group, linestyle="--", color="gray", label="group")
            axis.set_title(image, fontsize=9)
            axis.set_xlabel("training step")
            axis.set_ylabel(measure)
            axis.legend(fontsize=7)
        figure.suptitle(f"{method}: learning curves ({measure}, mean over seeds)", fontsize=10)
        figure.tight_layout()
        path = folder / f"curves_{method}.png"
        figure.savefig(path, dpi=110)
        paths.append(path)
    return paths


def sample_grids(results: Sequence[dict[str, Any]], out: Path, folder: Path) -> list[Path]:
    """Per method and image: rows are prompts, columns seeds (each seed's first image of the prompt)."""
    paths = []
    keys = sorted({(cell["method"], cell["image"]) for cell in results})
    for method, image in keys:
        cells = sorted(
            (c for c in results if c["method"] == method and c["image"] == image and c["samples"]),
            key=lambda c: c["seed"],
        )
        if not cells:
            continue
        prompts = list(dict.fromkeys(sample["prompt"] for sample in cells[0]["samples"]))
        figure, axes = _figure(
            len(prompts), len(cells), figsize=(2.6 + THUMBNAIL * len(cells), THUMBNAIL * len(prompts)), squeeze=False
        )
        for column, cell in enumerate(cells):
            first = {}
            for sample in cell["samples"]:
                first.setdefault(sample["prompt"], sample["file"])
            for row, prompt in enumerate(prompts):
                axis = axes[row][column]
                with Image.open(out / cell["folder"] / first[prompt]) as picture:
                    axis.imshow(picture.convert("RGB"))
                axis.set_xticks([])
                axis.set_yticks([])
                if row == 0:
                    axis.set_title(f"seed {cell['seed']}", fontsize=8)
                if column == 0:
                    axis.set_ylabel(prompt, rotation=0, ha="right", va="center", fontsize=7)
        figure.suptitle(f"{method} on {image}", fontsize=10)
        figure.tight_layout()
        path = folder / f"samples_{method}_{image}.png"
        figure.savefig(path, dpi=100)
        paths.append(path)
    return paths


def _overlay(cell_folder: Path, concepts: Sequence[str]) -> Image.Image:
    with Image.open(cell_folder / "input.png") as picture:
        image = picture.convert("RGB")
    planes = []
    for concept in concepts:
        with Image.open(cell_folder / "masks" / f"{concept}.png") as mask:
            planes.append(torch.from_numpy(np.asarray(mask.convert("L").resize(image.size)) >= 128))
    return mask_overlay(image, torch.stack(planes))


def mask_overlays(results: Sequence[dict[str, Any]], methods: Sequence[str], out: Path, folder: Path) -> list[Path]:
    """Per method: the masks it used (first seed) over each input, one colour per concept."""
    paths = []
    for method in methods:
        cells = {}
        for cell in sorted((c for c in results if c["method"] == method), key=lambda c: c["seed"]):
            if not (out / cell["folder"] / "masks" / f"{cell['concepts'][0]}.png").is_file():
                continue  # a method that uses no masks, or a failed cell
            cells.setdefault(cell["image"], cell)
        if not cells:
            continue
        figure, axes = _figure(1, len(cells), figsize=(2.6 * len(cells), 2.9), squeeze=False)
        for axis, (image, cell) in zip(axes[0], sorted(cells.items()), strict=True):
            axis.imshow(_overlay(out / cell["folder"], cell["concepts"]))
            axis.set_title(f"{image}\n" + ", ".join(cell["concepts"]), fontsize=8)
            axis.axis("off")
        figure.suptitle(f"{method}: masks used", fontsize=10)
        figure.tight_layout()
        path = folder / f"masks_{method}.png"
        figure.savefig(path, dpi=110)
        paths.append(path)
    return paths


def write_report(
    out: Path,
    *,
    dataset: str,
    methods: Sequence[str],
    metrics: Sequence[str],
    results: Sequence[dict[str, Any]],
    how: dict[str, Any],
    settings: GridSettings,
) -> dict[str, Any]:
    """Write report.json, report.md and the plots; return the report."""
    aggregated = aggregate(results, methods, metrics)
    report = {
        "dataset": dataset,
        "how": how,
        "settings": settings.described(),
        "methods": {method: {"recipe": settings.recipe(method).as_dict(), **aggregated[method]} for method in methods},
        "cells": list(results),
    }
    (out / "report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")

    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    figures = {
        "Measures": bar_charts(aggregated, metrics, plots),
        "Learning curves": learning_curves(results, methods, plots),
        "Masks each method used": mask_overlays(results, methods, out, plots),
        "Samples (rows: prompts, columns: seeds)": sample_grids(results, out, plots),
    }
    lines = [f"# Evaluation on {dataset}", "", markdown_table(aggregated, metrics), ""]
    lines.append(
        "Mean ± standard deviation over the cells that ran (one cell per image and seed: with one seed, the spread "
        "is job to job); the best of each column in bold (size_ratio: the closest to 1); failed cells are left out."
    )
    if any(entry["failed"] for entry in aggregated.values()):
        zeroed = [name for name in metrics if name in FAILED_COUNTS_AS_ZERO]
        if zeroed:
            lines += ["", "Counting each failed cell as 0:", "", markdown_table(aggregated, zeroed, "failed_as_zero")]
        if len(methods) > 1:
            lines += [
                "",
                "Only the images and seeds every method ran:",
                "",
                markdown_table(aggregated, metrics, "common_cells"),
            ]
    lines += ["", "## How it was run", ""]
    lines += [f"- {key}: {value}" for key, value in how.items()]
    lines += ["", "Seconds per cell (mean):", ""]
    for method, entry in aggregated.items():
        split = ", ".join(f"{stage} {seconds:.1f}" for stage, seconds in entry["seconds_per_cell"].items())
        lines.append(f"- {method}: {split}")
    for cell in results:
        if "error" in cell:
            lines.append(f"- failed: {cell['method']} {cell['image']} seed {cell['seed']}: {cell['error']}")
    if not figures["Learning curves"]:
        lines += ["", "No learning curves: they need `--curve-every K` and the local backend (training checkpoints)."]
    for title, paths in figures.items():
        if paths:
            lines += ["", f"## {title}", ""] + [f"![{path.stem}](plots/{path.name})" for path in paths]
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return report
