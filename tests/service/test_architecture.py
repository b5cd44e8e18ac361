"""The CLI loads nothing heavy until a command runs: building the parser (`--help`) imports no framework."""

import subprocess
import sys

HEAVY_MODULES = ("torch", "fastapi", "sqlalchemy", "httpx", "service", "worker", "attencraft_core.models")


def test_building_the_command_line_imports_nothing_heavy() -> None:
    probe = (
        "import sys; from attencraft_cli.main import build_parser; build_parser(); "
        f"print(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "[]"
