"""Run `attencraft` as a user does: a fresh process, no ATTENCRAFT_* settings but the ones a test gives."""

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def attencraft(*arguments: str, cwd: Path, env: dict[str, str] | None = None, timeout_s: float = 120) -> Run:
    inherited = {name: value for name, value in os.environ.items() if not name.startswith("ATTENCRAFT_")}
    environment = {**inherited, "PYTHONUNBUFFERED": "1", "ATTENCRAFT_DATA_DIR": str(cwd / "data"), **(env or {})}
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "attencraft_cli.main", *arguments],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    return Run(result.returncode, result.stdout, result.stderr, time.perf_counter() - started)
