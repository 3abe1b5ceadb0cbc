"""Prometheus metrics of the daemon (``GET /metrics``), on a registry of its own.

A registry per daemon rather than prometheus-client's global one: tests and benchmarks start
several daemons in one interpreter, and the global registry refuses a metric registered twice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from syncd import __version__
from syncd.http import all_budgets
from syncd.redact import redact

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: records by outcome, from a run's counts: outcome label -> the count keys that add up to it
RECORD_OUTCOMES = {
    "read": ("read_a", "read_b"),
    "unchanged": ("unchanged",),
    "created": ("created_a", "created_b"),
    "updated": ("updated_a", "updated_b"),
    "archived": ("archived_a", "archived_b"),
    "failed": ("failed",),
    "excluded": ("excluded",),
    "ambiguous": ("ambiguous",),
    "conflict": ("conflicts",),
}

STATES = ("idle", "running", "paused", "needs_auth", "failing")

# a run takes from a second (a small CSV) to hours (a first merge under a tight rate limit)
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, float("inf"))


class _BudgetCollector(Collector):
    """Time spent waiting on rate budgets, read from :func:`syncd.http.all_budgets` at scrape
    time. Scrapes are served on the event loop, which is where the budgets live."""

    def collect(self) -> Iterator[Metric]:
        waited = CounterMetricFamily(
            "syncd_rate_budget_wait_seconds",
            "Time requests spent waiting for a rate budget (rule 10), per budget.",
            labels=["budget"],
        )
        try:
            budgets = all_budgets()
        except RuntimeError:  # no running loop (a scrape from another thread)
            budgets = {}
        for key, budget in sorted(budgets.items()):
            waited.add_metric([redact(key)], budget.waited_seconds)
        yield waited


class _StateCollector(Collector):
    def __init__(self, states: Callable[[], dict[str, str]], running: Callable[[], int]) -> None:
        self._states = states
        self._running = running

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "syncd_sync_state", "1 for the state each sync is in.", labels=["sync", "state"]
        )
        for name, current in sorted(self._states().items()):
            for state in STATES:
                family.add_metric([name, state], 1.0 if state == current else 0.0)
        yield family
        yield GaugeMetricFamily("syncd_runs_in_progress", "Runs going on now.", self._running())


class Metrics:
    def __init__(self) -> None:
        # the *_created series (when each label set first appeared) only double the output
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        self.runs = Counter(
            "syncd_runs",
            "Finished runs by outcome.",
            ["sync", "outcome"],
            registry=self.registry,
        )
        self.records = Counter(
            "syncd_records",
            "Records handled by runs, by outcome.",
            ["sync", "outcome"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "syncd_run_duration_seconds",
            "How long runs took.",
            ["sync"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.last_success = Gauge(
            "syncd_last_success_timestamp_seconds",
            "When each sync last completed a run (outcome success or partial), Unix time.",
            ["sync"],
            registry=self.registry,
        )
        self.config_ok = Gauge(
            "syncd_config_last_reload_successful",
            "1 when the last config load or reload succeeded (the old config keeps running).",
            registry=self.registry,
        )
        self.config_ok.set(1)
        self.claimed = Gauge(
            "syncd_sync_claimed_since_timestamp_seconds",
            "A shared store: since when the daemon (holder) runs the sync.",
            ["sync", "holder"],
            registry=self.registry,
        )
        info = Gauge("syncd_info", "The daemon's version.", ["version"], registry=self.registry)
        info.labels(__version__).set(1)
        self.registry.register(_BudgetCollector())

    def watch_states(
        self, states: Callable[[], dict[str, str]], running: Callable[[], int]
    ) -> None:
        self.registry.register(_StateCollector(states, running))

    def record_run(self, sync: str, outcome: str, counts: dict[str, int], duration: float) -> None:
        self.runs.labels(sync, outcome).inc()
        self.duration.labels(sync).observe(duration)
        for label, keys in RECORD_OUTCOMES.items():
            value = sum(int(counts.get(key, 0)) for key in keys)
            if value:
                self.records.labels(sync, label).inc(value)

    def set_last_success(self, sync: str, timestamp: float) -> None:
        self.last_success.labels(sync).set(timestamp)

    def set_claims(self, claims: Mapping[str, Any]) -> None:
        """Which daemon runs which sync, since when (a shared store; any daemon's claims)."""
        self.claimed.clear()
        for sync, claim in claims.items():
            since = claim.since.replace(tzinfo=UTC).timestamp() if claim.since else 0.0
            self.claimed.labels(sync, claim.holder).set(since)

    def forget(self, sync: str) -> None:
        """A sync removed from the config stops being reported as current."""
        with contextlib.suppress(KeyError):
            self.last_success.remove(sync)

    def render(self) -> bytes:
        return generate_latest(self.registry)
