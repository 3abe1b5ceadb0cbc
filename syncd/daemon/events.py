"""The daemon's event hub: what ``GET /api/v1/events`` streams (Server-Sent Events).

The scheduler publishes to it (a run started, its progress, its end, a sync's state changing, an
error); every subscriber (a console in a browser, a script with the bearer token) gets each event
as a JSON object. Publishing never blocks and never fails: a subscriber that does not keep up
loses its connection (it reconnects with ``Last-Event-ID`` and gets what it missed from the
replay buffer) instead of slowing the daemon down or growing its memory without bound.

Events carry ids that increase by one; the hub keeps the last :data:`REPLAY` of them so that a
reconnecting client misses nothing short. Every event's data passes the secret redaction before
it is kept (rule 12): no subscriber can see a secret, whatever the publisher put in.

Event kinds (docs/api.md lists their fields):

* ``run.started``   ``{sync, run_id, trigger, started_at}``
* ``run.progress``  ``{sync, run_id, listed, planned, written, total}``
* ``run.finished``  ``{sync, run_id, outcome, counts, message, started_at, finished_at}``
* ``sync.state``    ``{sync, state, previous, paused, message}``
* ``error``         ``{sync, message}`` (a run that failed, needs authorisation or crashed)
* ``syncs.changed`` ``{added, removed, changed}`` (after a reload)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from syncd.redact import redact_data

#: events kept for clients that reconnect with ``Last-Event-ID``
REPLAY = 512
#: events queued for one subscriber before it is dropped as too slow
QUEUE = 1024


@dataclass(frozen=True)
class Event:
    id: int
    kind: str
    data: dict[str, Any]

    def sse(self) -> bytes:
        """The event in the text/event-stream format."""
        body = json.dumps(self.data, sort_keys=True, default=str, separators=(",", ":"))
        return f"id: {self.id}\nevent: {self.kind}\ndata: {body}\n\n".encode()


class Subscription:
    """One subscriber's queue; iterate it for events (it ends when the hub closes, or when the
    subscriber fell too far behind)."""

    def __init__(self, hub: EventHub) -> None:
        self.hub = hub
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(QUEUE)
        self.dropped = False

    def put(self, event: Event | None) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped = True
            self.hub.unsubscribe(self)
            # make room for the end marker: the reader stops and the client reconnects
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.queue.put_nowait(None)

    async def get(self, within: float | None = None) -> Event | None:
        """The next event; ``None`` when the stream is over. Raises ``TimeoutError``."""
        return await asyncio.wait_for(self.queue.get(), within)

    def close(self) -> None:
        self.hub.unsubscribe(self)

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            event = await self.queue.get()
            if event is None:
                return
            yield event


class EventHub:
    def __init__(self, replay: int = REPLAY) -> None:
        self._ids = itertools.count(1)
        self._recent: collections.deque[Event] = collections.deque(maxlen=replay)
        self._subscribers: set[Subscription] = set()
        self.closed = False
        self.published = 0

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    @property
    def last_id(self) -> int:
        return self._recent[-1].id if self._recent else 0

    def publish(self, kind: str, data: dict[str, Any]) -> Event:
        event = Event(next(self._ids), kind, redact_data(data))
        self.published += 1
        self._recent.append(event)
        for subscriber in list(self._subscribers):
            subscriber.put(event)
        return event

    def subscribe(self, last_event_id: int | None = None) -> Subscription:
        """A new subscriber; with ``last_event_id``, the kept events after it come first."""
        subscription = Subscription(self)
        if self.closed:
            subscription.put(None)
            return subscription
        if last_event_id is not None:
            for event in self._recent:
                if event.id > last_event_id:
                    subscription.put(event)
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    def recent(self, kind: str | None = None) -> list[Event]:
        return [e for e in self._recent if kind is None or e.kind == kind]

    def close(self) -> None:
        """End every stream (the daemon is stopping)."""
        self.closed = True
        for subscriber in list(self._subscribers):
            subscriber.put(None)
        self._subscribers.clear()
