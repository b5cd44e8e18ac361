"""Turning expected failures into one clear sentence and a non-zero exit, never a traceback."""

import argparse
import functools
import sys
from collections.abc import Callable

EXIT_USER_ERROR = 2

Handler = Callable[[argparse.Namespace], int]


def user_errors(handler: Handler) -> Handler:
    @functools.wraps(handler)
    def wrapped(arguments: argparse.Namespace) -> int:
        from attencraft_core.errors import AttenCraftError

        try:
            return handler(arguments)
        except AttenCraftError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_USER_ERROR
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130

    return wrapped
