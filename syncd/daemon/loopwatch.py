"""How late the event loop is: a task that measures its own wake-up lateness.

Everything the daemon answers (the API, the console, webhooks, the watchdog) waits while any
callback holds the event loop, so a long stall is a slow ``syncd status`` for everyone. The
watch sleeps :data:`INTERVAL` seconds again and again; how much later than asked it wakes is how
long the loop was held by something else (a stall shorter than the interval shows when it
straddles a wake-up). ``GET /metrics`` has the lateness as a histogram
(``syncd_event_loop_lag_seconds``) and its largest value (``syncd_event_loop_lag_max_seconds``);
a stall of a second or more is logged as a warning.

Lateness has two causes: the loop computing (a callback that runs too long: the daemon's own
fault, and what a change can cut) and the loop waiting for a CPU or for the GIL (a loaded
machine, or a thread computing beside it). The watch tells them apart with the loop thread's
CPU time (:func:`time.thread_time`): ``syncd_event_loop_busy_seconds`` is the part of each
lateness the loop spent computing. To find *what* held the loop: asyncio's
debug mode (``PYTHONASYNCIODEBUG=1`` logs every callback over 100 ms with its task) or a sampling
profiler (``py-spy record --pid PID``).
"""

from __future__ import annotations

import asyncio
import time

from prometheus_client import CollectorRegistry, Gauge, Histogram

from syncd.logs import get_logger

log = get_logger("syncd.daemon")

#: how often the watch wakes up: rarely enough to cost nothing on an idle daemon
INTERVAL = 0.05
#: a stall at least this long is logged
WARN_AFTER = 1.0
LAG_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, float("inf"))


class LoopWatch:
    def __init__(self, registry: CollectorRegistry, interval: float = INTERVAL) -> None:
        self.interval = interval
        self.largest = 0.0
        self.lag = Histogram(
            "syncd_event_loop_lag_seconds",
            "How much later than asked the event loop woke a sleeping task: how long something "
            "else held the loop.",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.busy = Histogram(
            "syncd_event_loop_busy_seconds",
            "The part of each lateness the event loop's thread spent computing (its CPU time): "
            "a callback holding the loop, rather than a loaded machine.",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.busy_max = Gauge(
            "syncd_event_loop_busy_max_seconds",
            "The longest the event loop computed without letting other tasks run, since the "
            "daemon started.",
            registry=registry,
        )
        self.largest_busy = 0.0
        self.lag_max = Gauge(
            "syncd_event_loop_lag_max_seconds",
            "The longest the event loop was held since the daemon started.",
            registry=registry,
        )

    def record(self, late: float, cpu: float | None = None) -> None:
        """One wake-up ``late`` seconds late; ``cpu``: the loop thread's CPU time meanwhile."""
        late = max(0.0, late)
        self.lag.observe(late)
        if late > self.largest:
            self.largest = late
            self.lag_max.set(late)
        if cpu is not None:
            busy = max(0.0, min(late, cpu))
            self.busy.observe(busy)
            if busy > self.largest_busy:
                self.largest_busy = busy
                self.busy_max.set(busy)
        if late >= WARN_AFTER:
            log.warning("the event loop was blocked", seconds=round(late, 3))

    async def run_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time() + self.interval
            used = time.thread_time()
            await asyncio.sleep(self.interval)
            self.record(loop.time() - asked, time.thread_time() - used)
