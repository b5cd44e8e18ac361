"""Server-sent events (text/event-stream) of one job's or generation's event log.

A stream replays the log after the client's `Last-Event-ID` (from the start without one) with reads of its own,
then follows it through the process's EventHub: one poller that reads the new events of every followed subject in
one query per interval (the worker that appends may be another process), however many streams are open. A stream
ends after the `end` event; comment lines keep an idle connection open through proxies. A stream whose API key is
revoked ends within a second; the client's reconnection is then refused (401).
"""

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

import anyio
from fastapi import Header
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from attencraft_contract.models import EventType
from service.auth import active_key_ids
from service.event_log import EVENTS_PER_READ, end_event_id, events_after, events_of_subjects_after

logger = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.25
KEY_RECHECK_S = 1.0
HUB_EVENTS_PER_READ = 2000
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


Entry = tuple[int, str, dict[str, Any]]  # id, type, data


def _read(sessions: sessionmaker[Session], subject_id: str, after: int) -> list[Entry]:
    with sessions() as session:
        return [(event.id, event.type, event.data) for event in events_after(session, subject_id, after)]


def _ended_by(sessions: sessionmaker[Session], subject_id: str, after: int) -> bool:
    with sessions() as session:
        end_id = end_event_id(session, subject_id)
    return end_id is not None and end_id <= after


@dataclass(eq=False)
class Subscription:
    """A stream following one subject from ``after`` on; its inbox gets batches of new events, or None when the
    stream's key was revoked."""

    subject_id: str
    key_id: str
    after: int
    inbox: asyncio.Queue[list[Entry] | None] = field(default_factory=asyncio.Queue)


class EventHub:
    """The one poller of an API process: every POLL_INTERVAL_S, one query for the new events of all followed
    subjects (and, every KEY_RECHECK_S, one for their keys), handed to each subscription. Polling per stream
    made 50 streams 200 queries a second, and their latency seconds."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self._subscriptions: set[Subscription] = set()
        self._poller: asyncio.Task[None] | None = None

    def subscribe(self, subject_id: str, key_id: str, after: int) -> Subscription:
        subscription = Subscription(subject_id, key_id, after)
        self._subscriptions.add(subscription)
        loop = asyncio.get_running_loop()
        if self._poller is None or self._poller.done() or self._poller.get_loop() is not loop:
            self._poller = loop.create_task(self._poll())  # runs while anyone follows
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    async def _poll(self) -> None:
        key_checked = time.monotonic()
        while True:
            await anyio.sleep(POLL_INTERVAL_S)
            subscriptions = list(self._subscriptions)
            if not subscriptions:  # the last stream has closed
                break
            recheck = time.monotonic() - key_checked >= KEY_RECHECK_S
            try:
                events, active_keys = await run_in_threadpool(self._read, subscriptions, recheck)
            except Exception:  # the database is away: the next poll tries again, the streams keep alive meanwhile
                logger.warning("reading the event log failed", exc_info=True)
                continue
            if recheck:
                key_checked = time.monotonic()
            for subscription in subscriptions:
                if active_keys is not None and subscription.key_id not in active_keys:
                    subscription.inbox.put_nowait(None)
                    continue
                new = [entry for entry in events.get(subscription.subject_id, []) if entry[0] > subscription.after]
                if new:
                    subscription.after = new[-1][0]
                    subscription.inbox.put_nowait(new)

    def _read(
        self, subscriptions: list[Subscription], recheck_keys: bool
    ) -> tuple[dict[str, list[Entry]], set[str] | None]:
        """The new events by subject; the still active keys among the subscriptions' when asked."""
        after = min(subscription.after for subscription in subscriptions)
        subjects = {subscription.subject_id for subscription in subscriptions}
        by_subject: dict[str, list[Entry]] = {}
        with self.sessions() as session:
            for event in events_of_subjects_after(session, subjects, after, HUB_EVENTS_PER_READ):
                by_subject.setdefault(event.subject_id, []).append((event.id, event.type, event.data))
            keys = {subscription.key_id for subscription in subscriptions}
            return by_subject, active_key_ids(session, keys) if recheck_keys else None


async def _follow(hub: EventHub, subject_id: str, key_id: str, after: int, keepalive_s: float) -> AsyncIterator[bytes]:
    yield f"retry: {RECONNECT_DELAY_MS}\n\n".encode()
    if after and await run_in_threadpool(_ended_by, hub.sessions, subject_id, after):
        return  # the client has seen the end already
    while True:  # the replay, with reads of its own: it may be long
        events = await run_in_threadpool(_read, hub.sessions, subject_id, after)
        for event_id, kind, data in events:
            yield _format(event_id, kind, data)
            after = event_id
            if kind == EventType.END:
                return
        if len(events) < EVENTS_PER_READ:
            break
    subscription = hub.subscribe(subject_id, key_id, after)
    try:
        while True:
            try:
                with anyio.fail_after(keepalive_s):
                    batch = await subscription.inbox.get()
            except TimeoutError:
                yield KEEPALIVE
                continue
            if batch is None:
                return  # the key was revoked
            for event_id, kind, data in batch:
                yield _format(event_id, kind, data)
                if kind == EventType.END:
                    return
    finally:
        hub.unsubscribe(subscription)


def event_stream(
    hub: EventHub, subject_id: str, key_id: str, last_event_id: str, keepalive_s: float
) -> EventStreamResponse:
    """The response; the caller has checked access with the key ``key_id`` and closed its own session (a stream may
    stay open for hours)."""
    return EventStreamResponse(
        _follow(hub, subject_id, key_id, int(last_event_id or 0), keepalive_s),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
