"""The import direction the layout promises: core <- worker <- cli, service <- worker <- cli; service never torch."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "attencraft_core": {
        "service",
        "worker",
        "attencraft_cli",
        "fastapi",
        "sqlalchemy",
        "celery",
        "boto3",
        "os.environ",
    },
    "service": {"torch", "diffusers", "transformers", "attencraft_core", "worker", "attencraft_cli"},
    "worker": {"attencraft_cli"},
}


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_packages_import_only_in_the_allowed_direction(package):
    offending = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for module in imported_modules(path):
            if any(module == banned or module.startswith(banned + ".") for banned in FORBIDDEN[package]):
                offending.append(f"{path.relative_to(ROOT)} imports {module}")
    assert offending == []


def test_the_core_never_reads_the_environment():
    for path in sorted((ROOT / "attencraft_core").rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        assert "os.environ" not in source and "getenv" not in source, path


def test_the_service_app_does_not_load_torch():
    if not (ROOT / "service" / "app.py").is_file():
        pytest.fail("service/app.py is missing")
    code = "import sys, service.app; print(any(m == 'torch' or m.startswith('torch.') for m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
