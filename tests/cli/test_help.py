"""`attencraft --version`, and every command's --help shows each option's default and an example."""

import argparse
import importlib.metadata

import pytest

from attencraft_cli.main import build_parser, main


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> dict[tuple[str, ...], argparse.ArgumentParser]:
    found = {path: parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                found |= commands(subparser, (*path, name))
    return found


COMMANDS = commands(build_parser())


def test_every_command_is_covered() -> None:
    names = {" ".join(path) for path in COMMANDS}
    assert {
        "train",
        "generate",
        "serve",
        "worker",
        "migrate",
        "demo",
        "keys create",
        "keys list",
        "keys revoke",
    } <= names
    assert {"jobs submit", "jobs get", "jobs wait", "jobs cancel", "jobs list"} <= names


@pytest.mark.parametrize("path", list(COMMANDS), ids=lambda path: " ".join(path) or "attencraft")
def test_help_shows_defaults_and_an_example(path: tuple[str, ...]) -> None:
    parser = COMMANDS[path]
    text = " ".join(parser.format_help().split())
    assert f"attencraft {' '.join(path)}".strip() in text.partition("example:")[2]
    for action in parser._actions:
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS) and action.help:
            assert f"(default: {action.default})" in text, (path, action.dest)


def test_serve_takes_model_device_and_data_dir() -> None:
    arguments = build_parser().parse_args(["serve", "--model", "tiny", "--device", "cpu", "--data-dir", "d"])
    assert (arguments.model, arguments.device, str(arguments.data_dir)) == ("tiny", "cpu", "d")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"attencraft {importlib.metadata.version('attencraft')}"
