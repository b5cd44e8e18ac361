"""A broken input rule: one sentence for a person, a stable code, and the fields it concerns."""

from collections.abc import Sequence


class InputError(ValueError):
    """The input breaks a rule; ``str(error)`` is the sentence the API's problem and the CLI's error both show.

    ``errors`` lists (field, message) pairs for the API's problem; by default the one field with the sentence.
    """

    def __init__(self, message: str, *, code: str, field: str, errors: Sequence[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field
        self.errors = list(errors) if errors else [{"field": field, "message": message}]


class InputTooLarge(InputError):
    """A file or image over a size limit (the API answers 413)."""


class UnsupportedInput(InputError):
    """A file of a kind that is not accepted (the API answers 415)."""
