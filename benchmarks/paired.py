"""Comparisons that survive a noisy machine.

Two variants timed one after the other drift with the machine: the same code gave an overhead ratio of 1.31 on a
busy machine and 0.89 on a quiet one. Here the variants run in pairs, alternating which goes first (A B, B A,
A B, ...), so each ratio compares runs made under the same load; the median of the per-pair ratios is reported
with its interquartile range, and a range wider than MAX_SPREAD of the median is reported as too noisy to conclude.
"""

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_SPREAD = 0.10  # widest interquartile range of the per-pair ratios, relative to their median, that concludes


@dataclass(frozen=True)
class PairedTiming:
    """Seconds of a baseline and a candidate, measured in interleaved pairs."""

    name: str
    baseline_seconds: list[float]
    candidate_seconds: list[float]

    @property
    def ratios(self) -> list[float]:
        """candidate / baseline of each pair."""
        return [c / b for b, c in zip(self.baseline_seconds, self.candidate_seconds, strict=True)]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    @property
    def interquartile(self) -> tuple[float, float]:
        if len(self.ratios) < 2:
            return self.ratio, self.ratio
        low, _, high = statistics.quantiles(self.ratios, n=4, method="inclusive")
        return low, high

    @property
    def spread(self) -> float:
        """Width of the interquartile range relative to the median; inf from a single pair."""
        if len(self.ratios) < 2:
            return float("inf")
        low, high = self.interquartile
        return (high - low) / self.ratio

    @property
    def difference(self) -> float:
        """Median of candidate − baseline seconds per pair."""
        return statistics.median(c - b for b, c in zip(self.baseline_seconds, self.candidate_seconds, strict=True))

    @property
    def conclusive(self) -> bool:
        return self.spread <= MAX_SPREAD

    def report(self) -> str:
        low, high = self.interquartile
        line = (
            f"{self.name}={self.ratio:.4g} (IQR {low:.4g}-{high:.4g}, {len(self.ratios)} pairs; "
            f"baseline {statistics.median(self.baseline_seconds):.4f} s, "
            f"candidate {statistics.median(self.candidate_seconds):.4f} s)"
        )
        if self.conclusive:
            return line
        return (
            f"{line} -- TOO NOISY TO CONCLUDE: the ratios spread {self.spread:.0%} of their median "
            f"(at most {MAX_SPREAD:.0%} concludes); rerun with more pairs or on a quieter machine"
        )


def timed(
    work: Callable[[], object],
    *,
    synchronize: Callable[[], object] = lambda: None,
    clock: Callable[[], float] = time.perf_counter,
) -> Callable[[], float]:
    """A measurement: run `work` and return its seconds. `synchronize` waits for queued device work
    (torch.cuda.synchronize on a GPU) before each clock reading."""

    def measure() -> float:
        synchronize()
        started = clock()
        work()
        synchronize()
        return clock() - started

    return measure


def interleaved(
    name: str,
    baseline: Callable[[], float],
    candidate: Callable[[], float],
    *,
    pairs: int,
    warmups: int = 1,
) -> PairedTiming:
    """Take each measurement `warmups` times untimed, then `pairs` pairs alternating which one goes first.

    A measurement returns seconds: `timed(work)` for wall time, or a duration the work reports itself.
    """
    for _ in range(warmups):
        baseline()
        candidate()
    baseline_seconds: list[float] = []
    candidate_seconds: list[float] = []
    for pair in range(pairs):
        if pair % 2:
            candidate_seconds.append(candidate())
            baseline_seconds.append(baseline())
        else:
            baseline_seconds.append(baseline())
            candidate_seconds.append(candidate())
    return PairedTiming(name, baseline_seconds, candidate_seconds)
