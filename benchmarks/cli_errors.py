"""How quickly `attencraft` reports a wrong input: a few argument and file mistakes, each measured in interleaved
pairs against a bare Python start (`python -c pass`), in fresh processes (benchmarks/paired.py). The measure is the
child process's CPU seconds (user + system), which other loads of a shared machine barely change, unlike its wall
time. Mistakes are found before torch is imported (tests/cli/test_wrong_inputs.py proves that), so each should cost
little more than the bare start.

    python -m benchmarks.cli_errors --pairs 10
"""

import argparse
import resource
import subprocess
import sys
import tempfile
from collections.abc import Callable

from benchmarks.paired import interleaved

CASES = {
    "missing photo": ["train", "{folder}/missing.jpg", "--concept", "cat", "--concept", "dog", "--out", "{folder}/o"],
    "one concept": ["train", "{folder}/missing.jpg", "--concept", "cat", "--out", "{folder}/o"],
    "unknown model": ["demo", "--model", "nope"],
    "unknown command": ["fly"],
}


def cpu_seconds(arguments: list[str]) -> Callable[[], float]:
    """A measurement: run `python ARGUMENTS` and return the CPU seconds it used."""

    def measure() -> float:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, *arguments], capture_output=True, check=False)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    return measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=10)
    arguments = parser.parse_args()
    bare = cpu_seconds(["-c", "pass"])
    with tempfile.TemporaryDirectory() as folder:
        for name, case in CASES.items():
            command = ["-m", "attencraft_cli.main", *(argument.format(folder=folder) for argument in case)]
            timing = interleaved(f"{name} / bare python", bare, cpu_seconds(command), pairs=arguments.pairs)
            print(timing.report())
            print(f"  {name}: {timing.difference:.3f} CPU s more than a bare start (median of per-pair differences)")


if __name__ == "__main__":
    main()
