"""The grid: every (method, image, seed) cell, run or reused from OUT/cells, with a progress bar showing cells
done, the current cell's stage and the time left."""

import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from evaluation.cells import Backend, Cell, CellCache, GridSettings, Scorer
from evaluation.datasets import EvalImage


@dataclass(frozen=True)
class GridRun:
    results: list[dict[str, Any]]  # one per cell, in grid order
    reused: int  # cells taken from the cache


def grid_cells(images: Sequence[EvalImage], methods: Sequence[str], seeds: int) -> list[Cell]:
    return [Cell(method, image, seed) for image in images for method in methods for seed in range(seeds)]


def run_grid(
    cells: Sequence[Cell],
    settings: GridSettings,
    backend: Backend,
    out: Path,
    *,
    scorer: Scorer | None = None,
    progress: bool = True,
    parallel: int = 1,
) -> GridRun:
    """Every cell's figures; `parallel` cells at a time (a backend on a deployment keeps several workers busy)."""
    cache = CellCache(out)
    scorer = scorer or Scorer(settings)
    finished = [cache.finished(cell, settings) for cell in cells]
    reused = sum(result is not None for result in finished)
    if reused < len(cells):
        scorer.encoders()  # an encoder that cannot load fails now, not after the first training
    bar = tqdm(total=len(cells), initial=reused, unit="cell", file=sys.stderr, dynamic_ncols=True, disable=not progress)
    pending = [cell for cell, result in zip(cells, finished, strict=True) if result is None]

    def run(cell: Cell) -> dict[str, Any]:
        def on_stage(stage: str) -> None:
            bar.set_description(f"{cell.label}: {stage}")

        result = cache.run(cell, settings, backend, scorer, on_stage=on_stage)
        bar.update(1)
        return result

    try:
        if parallel == 1:
            computed = iter([run(cell) for cell in pending])  # in this thread: Ctrl-C stops at once
        else:
            with ThreadPoolExecutor(max_workers=parallel) as pool:
                computed = iter(list(pool.map(run, pending)))
    finally:
        bar.close()
    return GridRun([result if result is not None else next(computed) for result in finished], reused)
