"""How late the event loop is: a task that measures its own wake-up lateness.

Everything the daemon answers (the API, the console, webhooks, the watchdog) waits while any
callback holds the event loop, so a long stall is a slow ``syncd status`` for everyone. The
watch sleeps :data:`INTERVAL` seconds again and again; how much later than asked it wakes is how
long the loop was held by something else (a stall shorter than the interval shows when it
straddles a wake-up). ``GET /metrics`` has the lateness as a histogram
(``syncd_event_loop_lag_seconds``) and its largest value (``syncd_event_loop_lag_max_seconds``);
a stall of a second or more is logged as a warning. To find *what* held the loop: asyncio's
debug mode (``PYTHONASYNCIODEBUG=1`` logs every callback over 100 ms with its task) or a sampling
profiler (``py-spy record --pid PID``).
"""

from __future__ import annotations

import asyncio

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
        self.lag_max = Gauge(
            "syncd_event_loop_lag_max_seconds",
            "The longest the event loop was held since the daemon started.",
            registry=registry,
        )

    def record(self, late: float) -> None:
        late = max(0.0, late)
        self.lag.observe(late)
        if late > self.largest:
            self.largest = late
            self.lag_max.set(late)
        if late >= WARN_AFTER:
            log.warning("the event loop was blocked", seconds=round(late, 3))

    async def run_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            self.record(loop.time() - asked)
