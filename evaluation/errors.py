"""What can go wrong in an evaluation that is the user's to fix: one sentence each (the CLI prints it, exit 2)."""

from attencraft_core.errors import AttenCraftError


class EvaluationError(AttenCraftError):
    code = "evaluation_failed"


class CellFailed(AttenCraftError):
    """A cell whose training could not succeed (e.g. a concept the method could not localise): recorded, not fatal."""

    code = "cell_failed"
