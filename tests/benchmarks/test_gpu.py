import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_gpu_benchmark_runs_quick_on_the_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    finished = subprocess.run(
        [str(ROOT / "benchmarks" / "gpu.sh"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    report = json.loads(out.read_text())
    assert (report["device"], report["model"], report["resolution"]) == ("cpu", "tiny", 256)
    job = report["jobs"]["attencraft"]
    assert set(job["stage_seconds"]) == {"masking", "estimating", "training", "saving"}
    assert job["steps"] == 3 and job["peak_memory_bytes"] > 0
    assert [(row["batch"], row["compiled"]) for row in report["generation"]] == [(1, False), (2, False)]
    assert all(row["images_per_s"] > 0 for row in report["generation"])
    assert "peak MiB" in finished.stdout and "img/s" in finished.stdout
