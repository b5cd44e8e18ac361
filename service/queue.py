"""The job-queue interface the API submits to; implementations are injected by the composition root."""

from typing import Protocol


class QueueUnavailable(Exception):
    """The broker could not take the message; the submitted row stays as it was committed."""


class JobQueue(Protocol):
    def submit_job(self, job_id: str) -> None:
        """Hand a committed, queued job to the workers."""
        ...

    def submit_generation(self, generation_id: str) -> None:
        """Hand a committed, queued generation to the inference workers."""
        ...

    def checks(self) -> dict[str, str]:
        """For /readyz: "ok", or why submitted work would not be picked up, per part (queue, model, ...)."""
        ...


class RecordingJobQueue:
    """Records submissions and runs nothing: for API tests and load benchmarks, never for real work."""

    def __init__(self) -> None:
        self.submitted: list[str] = []
        self.submitted_generations: list[str] = []

    def submit_job(self, job_id: str) -> None:
        self.submitted.append(job_id)

    def submit_generation(self, generation_id: str) -> None:
        self.submitted_generations.append(generation_id)

    def checks(self) -> dict[str, str]:
        return {"queue": "ok"}
