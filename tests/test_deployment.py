"""docker-compose.yml: the services, their start order, healthchecks and the GPU reservation."""

import os
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def test_every_service_of_the_deployment_is_there_with_healthchecks():
    services = compose()["services"]
    assert {"postgres", "redis", "minio", "minio-init", "migrate", "api", "worker"} <= services.keys()
    for name in ("postgres", "redis", "minio", "api"):
        assert "healthcheck" in services[name], name


def test_start_order_waits_for_healthy_dependencies_and_the_migration():
    services = compose()["services"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["minio-init"]["condition"] == "service_completed_successfully"
        assert depends["redis"]["condition"] == "service_healthy"
    assert "mc mb --ignore-existing local/attencraft" in " ".join(services["minio-init"]["entrypoint"])


def test_the_worker_reserves_an_nvidia_gpu_and_uses_celery():
    services = compose()["services"]
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert services["worker"]["command"][:2] == ["attencraft", "worker"]
    assert services["api"]["environment"]["ATTENCRAFT_QUEUE"] == "celery"


def test_the_gpu_worker_runs_on_cuda_with_its_run_options_from_the_shell():
    from service.settings import Settings

    environment = compose()["services"]["worker"]["environment"]
    assert environment["ATTENCRAFT_QUEUE"] == "celery" and environment["ATTENCRAFT_DEVICE"] == "cuda"
    for name in ("PRECISION", "GRADIENT_CHECKPOINTING", "COMPILE_UNET"):
        assert environment[f"ATTENCRAFT_{name}"].startswith(f"${{ATTENCRAFT_{name}:-")
        assert name.lower() in Settings.model_fields


def test_compose_validates_where_a_compose_tool_is_installed():
    if shutil.which("docker-compose"):
        command = ["docker-compose", "config", "-q"]
    elif (
        shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    ):
        command = ["docker", "compose", "config", "-q"]
    else:
        return  # the structural checks above still ran
    with_secret = {**os.environ, "ATTENCRAFT_SECRET_KEY": "a-secret-of-the-operator"}
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=with_secret)
    assert result.returncode == 0, result.stderr
    without = {name: value for name, value in os.environ.items() if name != "ATTENCRAFT_SECRET_KEY"}
    refused = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=without)
    assert refused.returncode != 0 and "ATTENCRAFT_SECRET_KEY" in refused.stderr


def test_the_deployment_has_no_default_secret():
    secret = compose()["x-attencraft-env"]["ATTENCRAFT_SECRET_KEY"]
    assert secret.startswith("${ATTENCRAFT_SECRET_KEY:?"), secret  # compose stops when it is not set
