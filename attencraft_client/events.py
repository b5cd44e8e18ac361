"""Server-sent events (text/event-stream) as the job events endpoint sends them, and a text progress bar."""

import json
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

import httpx

from attencraft_client.errors import ClientError
from attencraft_contract.models import JobOut, JobStatus, Progress

NO_EVENT_STREAM = frozenset({404, 405, 406, 501})  # a server without the endpoint: poll instead
EVENT_STREAM_RECONNECTS = 5
EVENT_STREAM_TIMEOUT = httpx.Timeout(30.0, read=60.0)  # the server sends keep-alives well within the read timeout


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


class JobFollower:
    """What waiting for a job does with each state and each event line, without I/O: the sync and the async job
    drive it from their own loops."""

    def __init__(self, job: JobOut, *, progress: bool, timeout_s: float | None) -> None:
        self.job = job
        self.bar = ProgressBar() if progress else None
        self.deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self.last_event_id: str | None = None
        self._parser = EventStreamParser()

    @property
    def events_path(self) -> str:
        return f"/jobs/{self.job.id}/events"

    def stream_headers(self) -> dict[str, str]:
        """For a new connection: resume after the last event seen."""
        self._parser = EventStreamParser()
        last = {"Last-Event-ID": self.last_event_id} if self.last_event_id else {}
        return {"Accept": "text/event-stream"} | last

    def take_line(self, line: str) -> bool:
        """One line of the stream; True once the `end` event came."""
        event = self._parser.feed(line)
        if event is None:
            return False
        self.last_event_id = event.id or self.last_event_id
        job, ended = apply_event(self.job, event)
        self.show(job)
        return ended

    def show(self, job: JobOut) -> None:
        """A new state of the job: drawn, and checked against the deadline while it runs."""
        self.job = job
        if self.bar:
            self.bar.show(job)
        if not job.status.is_terminal and self.deadline is not None and time.monotonic() > self.deadline:
            raise ClientError(f"Job {job.id} is still {job.status} after the wait's timeout.")

    def close(self) -> None:
        if self.bar:
            self.bar.close()


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
