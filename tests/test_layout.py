"""The import direction the layout promises: core <- worker <- cli, service <- worker <- cli; service never torch;
the evaluation on the core and the client, under the CLI alone;
the contract (rules and wire models) under everything; the client on the contract, httpx and pydantic alone."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVER_SIDE = {"torch", "diffusers", "transformers", "fastapi", "starlette", "sqlalchemy", "celery", "boto3"}
OUR_PACKAGES = {"attencraft_core", "service", "worker", "attencraft_cli", "attencraft_client", "evaluation", "toyworld"}
FORBIDDEN = {
    "attencraft_contract": SERVER_SIDE | OUR_PACKAGES | {"httpx", "os.environ"},
    "attencraft_client": SERVER_SIDE
    | OUR_PACKAGES - {"attencraft_client"}
    | {"PIL", "tqdm", "attencraft_contract.images"},
    "attencraft_core": {
        "service",
        "worker",
        "attencraft_cli",
        "evaluation",
        "fastapi",
        "sqlalchemy",
        "celery",
        "boto3",
        "os.environ",
        "toyworld",
    },
    "toyworld": {
        "service",
        "worker",
        "attencraft_cli",
        "attencraft_client",
        "evaluation",
        "fastapi",
        "sqlalchemy",
        "celery",
    },
    "service": {
        "torch",
        "diffusers",
        "transformers",
        "attencraft_core",
        "worker",
        "attencraft_cli",
        "attencraft_client",
        "evaluation",
        "toyworld",
    },
    "worker": {"attencraft_cli", "evaluation", "toyworld"},
    "evaluation": {"service", "worker", "attencraft_cli", "fastapi", "sqlalchemy", "celery", "boto3"},
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


def loaded_modules_after(statement: str, candidates: set[str]) -> list[str]:
    code = f"import sys; {statement}; print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(candidates)!r}))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return ast.literal_eval(result.stdout.strip())


def test_the_client_loads_only_httpx_pydantic_and_the_contract():
    heavy = SERVER_SIDE | OUR_PACKAGES - {"attencraft_client"} | {"PIL", "numpy", "tqdm"}
    assert loaded_modules_after("import attencraft_client", heavy) == []


def test_the_contract_loads_no_server_code():
    assert loaded_modules_after("import attencraft_contract.rules", SERVER_SIDE | OUR_PACKAGES | {"httpx"}) == []
