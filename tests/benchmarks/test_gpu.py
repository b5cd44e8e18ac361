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
    attencraft, baseline = report["jobs"]["attencraft"], report["jobs"]["custom_diffusion"]
    assert set(attencraft["stage_seconds"]) == {"masking", "estimating", "training", "saving"}
    assert set(baseline["stage_seconds"]) == {"prior", "training", "saving"}
    assert (attencraft["prior_images"], baseline["prior_images"]) == (0, 2)
    assert all(job["steps"] == 3 and job["peak_memory_bytes"] > 0 for job in (attencraft, baseline))
    rows = [(row["method"], row["batch"], row["compiled"]) for row in report["generation"]]
    assert rows == [(method, batch, False) for method in ("attencraft", "custom_diffusion") for batch in (1, 2)]
    assert all(row["images_per_s"] > 0 for row in report["generation"])
    assert "peak MiB" in finished.stdout and "img/s" in finished.stdout
