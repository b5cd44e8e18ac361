"""Every failure of a command is one line on stderr and a non-zero exit; a traceback only with --debug."""

import argparse
import sys
import traceback
from collections.abc import Callable

from attencraft_contract.errors import InputError
from attencraft_core.errors import AttenCraftError

EXIT_FAILED = 1  # something that was not the user's doing: a bug, or the server refused for its own reasons
EXIT_USER_ERROR = 2  # a mistake in the arguments, the files, the settings, or a resource that is not available
EXIT_INTERRUPTED = 130

Handler = Callable[[argparse.Namespace], int]


class CommandError(Exception):
    """A mistake of the user or an unavailable resource, said in one sentence."""


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def user_error_sentence(error: BaseException) -> str | None:
    """The sentence of an error that is the user's (or an unavailable resource's), else None.

    The client's and the service's error types are recognised without importing them (httpx, FastAPI): an error
    of theirs can only be raised once a command has imported them.
    """
    if isinstance(error, CommandError | InputError | AttenCraftError):
        return str(error)
    client_errors = sys.modules.get("attencraft_client.errors")
    if client_errors is not None and isinstance(error, client_errors.ClientError):
        return str(error)
    service_errors = sys.modules.get("service.errors")
    if service_errors is not None and isinstance(error, service_errors.ServiceError):
        return error.detail
    return None


def is_server_fault(error: BaseException) -> bool:
    return getattr(error, "status", 0) >= 500


def run_command(handler: Handler, arguments: argparse.Namespace) -> int:
    """Run a command; turn what goes wrong into one line on stderr and an exit status."""
    try:
        return handler(arguments)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:
        if getattr(arguments, "debug", False):
            traceback.print_exc()
        sentence = user_error_sentence(error)
        if sentence is not None:
            print(f"error: {one_line(sentence)}", file=sys.stderr)
            return EXIT_FAILED if is_server_fault(error) else EXIT_USER_ERROR
        hint = "" if getattr(arguments, "debug", False) else " (run with --debug to see the traceback)"
        print(f"error: unexpected {type(error).__name__}: {one_line(str(error))}{hint}", file=sys.stderr)
        return EXIT_FAILED
