"""README's two commands are what CI runs; they must stay two, and stay runnable."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def two_commands() -> list[str]:
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)\n```", section, re.S)


def test_readme_gives_one_install_and_run_command_and_one_test_command():
    install_and_run, run_tests = two_commands()
    assert install_and_run.startswith("pip install torch==2.13.0 && ")
    assert "\n" not in install_and_run and "\n" not in run_tests
    assert "pytest" in run_tests


def test_ci_runs_exactly_the_readme_commands_last():
    install_and_run, run_tests = two_commands()
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert ci_lines[-2:] == [f"{install_and_run} || exit 1", run_tests]
