"""README's two commands are what CI runs; they must stay two, and stay runnable. README documents every setting
and says where the $KEY and $JOB of its examples come from."""

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


def test_readme_documents_every_setting_with_its_values():
    from service.settings import Settings

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(ATTENCRAFT_[A-Z0-9_]+)` \| ([^|]+) \| ([^|]+) \|$", readme, re.M)
    assert sorted(f"ATTENCRAFT_{name.upper()}" for name in Settings.model_fields) == sorted(row[0] for row in rows)
    assert all(default.strip() and values.strip() for _name, default, values in rows)
    assert "`true` or `false`" in readme.split("`ATTENCRAFT_WEBHOOK_ALLOW_LOOPBACK`")[1].splitlines()[0]


def test_readme_says_where_key_and_job_come_from():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_key, first_job = readme.index("$KEY"), readme.index("$JOB")
    assert "export KEY=ak_... " in readme[first_key - 80 : first_key]
    assert "prints the new job's id, which is `" in " ".join(readme[first_job - 60 : first_job].split())


def test_readme_tables_every_method_with_its_step_cost():
    from attencraft_contract.methods import Method

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Methods", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `") and not line.startswith("| `method`")]
    tabled = {name for row in rows for name in re.findall(r"`([a-z_]+)`", row.split("|")[1])}
    assert {method.value for method in Method} <= tabled
    assert all(re.search(r"\d\.\d\d", row.split("|")[-2]) for row in rows)
