"""One cell of `attencraft eval` through `--service` on the embedded server: its figures equal the local run's, its
job carries the preset and prior-preservation switches; a wrong key is one sentence."""

import json
import secrets

import pytest

from attencraft_cli.sample_photo import two_object_photo
from attencraft_client import Client
from evaluation.catalog import PAPER_METRICS
from tests.cli.run import attencraft
from tests.e2e.test_embedded_service import serve
from tests.evaluation.test_eval_command import SMALL, encoders

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
RUN_TIMEOUT_S = 1500


def test_a_cell_through_the_service_scores_as_the_local_run(tmp_path, tiny_clip_folder, tiny_dino_folder):
    data = tmp_path / "data"
    data.mkdir()
    two_object_photo().save(data / "cat_dog.png")
    common = [str(data), *SMALL, "--model", "tiny", *encoders(tiny_clip_folder, tiny_dino_folder), "--no-progress"]
    common += ["--preset", "official", "--no-prior-preservation"]  # the job is told both
    local = attencraft(
        "eval", *common, "--curve-every", "0", "--out", str(tmp_path / "local"), cwd=tmp_path, timeout_s=RUN_TIMEOUT_S
    )
    assert local.returncode == 0, local.stderr

    key = "ak_" + secrets.token_urlsafe(24)
    server_dir = tmp_path / "server"
    server_dir.mkdir()
    with serve(server_dir, base_model="tiny", device="cpu", api_key=key) as (url, _log):
        wrong = attencraft(
            "eval",
            *common,
            "--service",
            url,
            "--key",
            "ak_wrong",
            "--out",
            str(tmp_path / "x"),
            cwd=tmp_path,
            timeout_s=600,
        )
        assert wrong.returncode == 2
        assert wrong.stderr.startswith("error: ") and len(wrong.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "x").exists()

        remote = attencraft(
            "eval",
            *common,
            "--service",
            url,
            "--key",
            key,
            "--out",
            str(tmp_path / "remote"),
            cwd=tmp_path,
            timeout_s=RUN_TIMEOUT_S,
        )
        assert remote.returncode == 0, remote.stderr
        with Client(url, key) as client:
            (job,) = client.list_jobs().items
    assert (job.options.method, job.options.preset, job.options.prior_preservation) == ("attencraft", "official", False)

    local_cell, remote_cell = (
        json.loads((tmp_path / name / "report.json").read_text())["cells"][0] for name in ("local", "remote")
    )
    assert remote_cell["curve"] == []
    assert set(remote_cell["metrics"]) == set(PAPER_METRICS)
    for name, value in local_cell["metrics"].items():
        assert remote_cell["metrics"][name] == pytest.approx(value, abs=1e-4), name
