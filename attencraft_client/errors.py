"""What the client raises: the API's problems as typed exceptions with their stable ``code``."""

import httpx
from pydantic import ValidationError

from attencraft_contract.models import FieldProblem, Problem


class ClientError(Exception):
    """Base of everything the client raises; ``str(error)`` is a sentence for a person."""


class ServerUnreachable(ClientError):
    def __init__(self, url: str, error: httpx.TransportError) -> None:
        super().__init__(f"The AttenCraft API at {url} cannot be reached ({type(error).__name__}: {error}).")
        self.url = url


class ApiError(ClientError):
    """An error response: ``status``, the problem's ``code``, its ``detail`` sentence and field ``errors``."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.detail)
        self.problem = problem
        self.status = problem.status
        self.code = problem.code
        self.detail = problem.detail
        self.errors: list[FieldProblem] = problem.errors or []

    @classmethod
    def from_response(cls, response: httpx.Response) -> "ApiError":
        """The problem+json body, or a stand-in problem when a proxy answered with something else."""
        try:
            return cls(Problem.model_validate_json(response.content))
        except ValidationError:
            phrase = response.reason_phrase or "error"
            return cls(
                Problem(
                    type="about:blank",
                    title=phrase,
                    status=response.status_code,
                    detail=f"The server answered {response.status_code} {phrase} to {response.request.url}.",
                    code=phrase.lower().replace(" ", "_"),
                )
            )


class TaskFailed(ClientError):
    """A generation that ended failed: the worker's ``code`` and sentence."""

    def __init__(self, what: str, code: str, message: str) -> None:
        super().__init__(f"{what} failed: {message}")
        self.code = code
