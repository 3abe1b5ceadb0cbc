"""Woodpecker's documented concurrency: one request processed at a time per API key, at most six
more waiting in a queue for at most 15 seconds, the rest refused with ``E_TOO_MANY_REQUESTS``
(API reference, docs.woodpecker.co/en/articles/5388048; vendors.md §3.4, §6).

A request that finds the key busy waits in line (first come, first served); one that waits longer
than the queue timeout, or finds the line full, is refused. With ``queue_size`` 0 a busy key
refuses at once: that is the emulator's ``concurrency="strict"`` option, the stricter reading of
"2 concurrent connections" pages, kept so that a connector can be shown never to overlap.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

DOCUMENTED_QUEUE = 6
DOCUMENTED_WAIT = 15.0


class Refused(Exception):
    """The line is full, or the wait in it ran out."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Line:
    busy: bool = False
    waiting: deque[asyncio.Future[None]] = field(default_factory=deque)


@dataclass
class SerialQueue:
    queue_size: int = DOCUMENTED_QUEUE
    timeout: float = DOCUMENTED_WAIT
    lines: dict[str, _Line] = field(default_factory=dict)
    #: requests that had to wait, and the most waiting at once (for tests and benchmarks)
    queued: int = 0
    most_waiting: int = 0
    #: set whenever a request joins a line (tests wait on it instead of sleeping)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def waiting(self, account: str) -> int:
        line = self.lines.get(account)
        return len(line.waiting) if line else 0

    async def acquire(self, account: str) -> None:
        line = self.lines.setdefault(account, _Line())
        if not line.busy:
            line.busy = True
            return
        if len(line.waiting) >= self.queue_size:
            raise Refused("the queue is full")
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        line.waiting.append(turn)
        self.queued += 1
        self.most_waiting = max(self.most_waiting, len(line.waiting))
        self.changed.set()
        try:
            await asyncio.wait_for(asyncio.shield(turn), self.timeout)
        except TimeoutError:
            if turn.done():  # granted just as the wait ran out: take the turn
                return
            line.waiting.remove(turn)
            turn.cancel()
            raise Refused("waited too long in the queue") from None
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.release(account)  # granted, but the client went away: pass it on
            elif turn in line.waiting:
                line.waiting.remove(turn)
            raise

    def release(self, account: str) -> None:
        line = self.lines[account]
        while line.waiting:
            turn = line.waiting.popleft()
            if not turn.done():
                turn.set_result(None)  # the key stays busy: the turn passes straight on
                return
        line.busy = False
