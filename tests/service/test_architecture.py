"""The CLI's service commands load nothing heavy until they run."""

import subprocess
import sys

HEAVY_MODULES = ("torch", "fastapi", "sqlalchemy", "service", "worker", "attencraft_core")


def test_registering_the_service_commands_imports_nothing_heavy() -> None:
    probe = (
        "import argparse, sys; from attencraft_cli.service_commands import add_service_commands; "
        "add_service_commands(argparse.ArgumentParser().add_subparsers()); "
        f"print(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "[]"
