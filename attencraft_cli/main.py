"""`attencraft` command line. Arguments and files are checked before anything heavy (torch, FastAPI) is
imported, so a mistake is reported in well under a second."""

import argparse
import importlib.metadata
import os
import sys

from attencraft_cli.core_commands import add_core_commands
from attencraft_cli.errors import run_command
from attencraft_cli.eval_command import add_eval_command
from attencraft_cli.parsing import Parser
from attencraft_cli.remote_commands import add_remote_commands
from attencraft_cli.service_commands import add_service_commands
from attencraft_cli.toy_commands import add_toy_commands


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="attencraft",
        description="Learn several concepts from one photo and draw them in new scenes.",
        example="attencraft demo                       # the whole flow on a built-in model, offline\n"
        "attencraft train photo.jpg --concept cat --concept dog --out runs/catdog",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {importlib.metadata.version('attencraft')}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_core_commands(subparsers)
    add_service_commands(subparsers)
    add_remote_commands(subparsers)
    add_toy_commands(subparsers)
    add_eval_command(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Library chatter (optional-dependency notices) would bury the progress bar and the summary.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    arguments = build_parser().parse_args(argv)
    return run_command(arguments.handler, arguments)


if __name__ == "__main__":
    sys.exit(main())
