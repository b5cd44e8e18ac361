"""argparse as this CLI uses it: one-line errors, defaults and an example in every --help."""

import argparse
import sys
from typing import Any, NoReturn

from attencraft_cli.errors import EXIT_USER_ERROR


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows each option's default and keeps the example's line breaks."""


class Parser(argparse.ArgumentParser):
    """An argument mistake is one line (not the usage block) and exit status 2."""

    def __init__(self, *args: Any, example: str = "", **kwargs: Any) -> None:
        if example:
            kwargs["epilog"] = "example:\n  " + example.strip().replace("\n", "\n  ")
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    """--debug after the command too; SUPPRESS keeps a subcommand from resetting `attencraft --debug CMD`."""
    parser.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show the traceback of an error"
    )


def command(subparsers: Any, name: str, *, help: str, example: str, description: str = "") -> Parser:
    parser: Parser = subparsers.add_parser(name, help=help, description=description or help, example=example)
    add_debug_flag(parser)
    return parser


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def non_negative_int(text: str) -> int:
    """An argparse type: a whole number of at least 0."""
    return 0 if text.strip() == "0" else positive_int(text)
