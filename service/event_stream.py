"""Server-sent events (text/event-stream) of one job's or generation's event log.

The stream replays the log after the client's `Last-Event-ID` (from the start without one), then follows it,
polling the database (the worker that appends may be another process), and ends after the `end` event. Comment
lines keep an idle connection open through proxies. A stream whose API key is revoked ends within a second; the
client's reconnection is then refused (401).
"""

import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import Header
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from attencraft_contract.models import EventType
from service.auth import key_is_active
from service.event_log import end_event_id, events_after

POLL_INTERVAL_S = 0.25
KEY_RECHECK_S = 1.0
RECONNECT_DELAY_MS = 1000
KEEPALIVE = b": keep-alive\n\n"

LastEventId = Annotated[
    str,
    Header(
        alias="Last-Event-ID",
        pattern=r"^[0-9]{0,18}$",
        description="Resume after this event id (the `id:` of the last event received); empty: from the start.",
    ),
]

EVENT_STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "An event stream: `id:`, `event:` (status, progress, masks, heatmaps, ratios, end) and "
        "`data:` (a JSON object) per event; `:` comment lines are keep-alives. Ends after the `end` event.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


class EventStreamResponse(StreamingResponse):
    media_type = "text/event-stream"


def _format(event_id: int, kind: str, data: dict[str, Any]) -> bytes:
    return f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _read(
    sessions: sessionmaker[Session], subject_id: str, after: int, recheck_key_id: str | None
) -> list[tuple[int, str, dict[str, Any]]] | None:
    """The events after ``after``; None when the key to recheck has been revoked."""
    with sessions() as session:
        if recheck_key_id is not None and not key_is_active(session, recheck_key_id):
            return None
        return [(event.id, event.type, event.data) for event in events_after(session, subject_id, after)]


def _ended_by(sessions: sessionmaker[Session], subject_id: str, after: int) -> bool:
    with sessions() as session:
        end_id = end_event_id(session, subject_id)
    return end_id is not None and end_id <= after


async def _follow(
    sessions: sessionmaker[Session], subject_id: str, key_id: str, after: int, keepalive_s: float
) -> AsyncIterator[bytes]:
    yield f"retry: {RECONNECT_DELAY_MS}\n\n".encode()
    if after and await run_in_threadpool(_ended_by, sessions, subject_id, after):
        return  # the client has seen the end already
    last_sent = key_checked = time.monotonic()
    while True:
        recheck = time.monotonic() - key_checked >= KEY_RECHECK_S
        events = await run_in_threadpool(_read, sessions, subject_id, after, key_id if recheck else None)
        if events is None:
            return  # the key was revoked
        if recheck:
            key_checked = time.monotonic()
        for event_id, kind, data in events:
            yield _format(event_id, kind, data)
            after, last_sent = event_id, time.monotonic()
            if kind == EventType.END:
                return
        if time.monotonic() - last_sent >= keepalive_s:
            yield KEEPALIVE
            last_sent = time.monotonic()
        await anyio.sleep(POLL_INTERVAL_S)


def event_stream(
    sessions: sessionmaker[Session], subject_id: str, key_id: str, last_event_id: str, keepalive_s: float
) -> EventStreamResponse:
    """The response; the caller has checked access with the key ``key_id`` and closed its own session (a stream may
    stay open for hours)."""
    return EventStreamResponse(
        _follow(sessions, subject_id, key_id, int(last_event_id or 0), keepalive_s),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
