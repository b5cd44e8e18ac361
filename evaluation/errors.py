"""What can go wrong in an evaluation that is the user's to fix: one sentence each (the CLI prints it, exit 2)."""

from attencraft_core.errors import AttenCraftError


class EvaluationError(AttenCraftError):
    code = "evaluation_failed"
