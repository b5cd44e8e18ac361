"""`attencraft` command line. Heavy imports happen inside each command, so `--help` stays fast."""

import argparse
import os
import sys

from attencraft_cli.core_commands import add_core_commands
from attencraft_cli.service_commands import add_service_commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attencraft", description="Learn several concepts from one photo and draw them in new scenes."
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_core_commands(subparsers)
    add_service_commands(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Library chatter (optional-dependency notices) would bury the progress bar and the summary.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    arguments = build_parser().parse_args(argv)
    return arguments.handler(arguments)


if __name__ == "__main__":
    sys.exit(main())
