"""Server-sent events (text/event-stream) as the job events endpoint sends them, and a text progress bar."""

import json
import sys
from dataclasses import dataclass
from typing import Any, TextIO

from attencraft_contract.models import JobOut, JobStatus, Progress

NO_EVENT_STREAM = frozenset({404, 405, 406, 501})  # a server without the endpoint: poll instead


@dataclass(frozen=True)
class Event:
    name: str
    data: dict[str, Any]
    id: str | None


class EventStreamParser:
    """Fed one line at a time; returns an Event at each blank line that ends one (comments are keep-alives)."""

    def __init__(self) -> None:
        self._name = "message"
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, line: str) -> Event | None:
        if not line:
            if not self._data:
                return None
            text = "\n".join(self._data)
            event = Event(self._name, json.loads(text) if text.strip() else {}, self._id)
            self._name, self._data = "message", []
            return event
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            self._name = value
        elif field == "data":
            self._data.append(value)
        elif field == "id":
            self._id = value
        return None


def apply_event(job: JobOut, event: Event) -> tuple[JobOut, bool]:
    """The job as the event leaves it, and whether the stream has ended (the terminal `end` event)."""
    update: dict[str, Any] = {}
    if "status" in event.data:
        update["status"] = JobStatus(event.data["status"])
    if "step" in event.data and "total" in event.data:
        update["progress"] = Progress(step=event.data["step"], total=event.data["total"])
    return job.model_copy(update=update), event.name == "end"


class ProgressBar:
    """`training [#######.............] 35/100` on one line of stderr, redrawn in place."""

    WIDTH = 30

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._last = ""

    def show(self, job: JobOut) -> None:
        total = max(job.progress.total, 1)
        filled = round(self.WIDTH * min(job.progress.step, total) / total)
        line = f"{job.status.value:<10} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {job.progress.step}/{total}"
        if line != self._last:
            self._stream.write("\r" + line)
            self._stream.flush()
            self._last = line

    def close(self) -> None:
        if self._last:
            self._stream.write("\n")
            self._stream.flush()
