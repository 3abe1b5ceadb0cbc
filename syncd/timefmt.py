"""One way to show a time, and the JSON of runs and failing records, for the API and ``--json``.

Every time stamp syncd prints as data (the API's JSON, the CLI's ``--json``) is RFC 3339 in UTC,
to the second, with ``Z``: ``2026-03-01T09:30:00Z`` (docs/api.md). The store keeps naive UTC
datetimes, and hands some of them out as ISO strings with microseconds: both go through
:func:`rfc3339` at the boundary, so that no output depends on how the store writes them.

This module imports only the standard library: the CLI loads it at start-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

#: ``limit`` of ``GET /api/v1/syncs/{name}/runs`` and of ``syncd history --limit``
RUNS_LIMIT_MAX = 1000
RUNS_LIMIT_DEFAULT = 20

#: the time fields of a failing record (``GET .../errors``, ``syncd errors --json``)
ISSUE_TIMES = ("first_seen", "last_seen", "next_attempt_at")


def rfc3339(value: datetime | str | None) -> str | None:
    """``2026-03-01T09:30:00Z``; a naive datetime (or ISO string) is taken as UTC.

    Fractions of a second are dropped, not rounded: a time never moves past the moment it names.
    """
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


class RunLike(Protocol):
    id: int
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    dry_run: bool
    trigger: str
    counts: dict[str, int]
    message: str | None


def run_json(run: RunLike) -> dict[str, Any]:
    """One run, as ``GET .../runs`` lists it and ``syncd history --json`` prints it."""
    started, finished = run.started_at, run.finished_at
    duration = None
    if finished is not None:
        duration = round((_aware(finished) - _aware(started)).total_seconds(), 3)
    return {
        "id": run.id,
        "outcome": run.outcome,
        "trigger": run.trigger,
        "dry_run": bool(run.dry_run),
        "started_at": rfc3339(started),
        "finished_at": rfc3339(finished),
        "duration_seconds": duration,
        "counts": dict(run.counts),
        "message": run.message,
    }


def issue_json(issue: Mapping[str, Any]) -> dict[str, Any]:
    """A failing record from the store, with its times in the one format."""
    data = dict(issue)
    for key in ISSUE_TIMES:
        if key in data:
            data[key] = rfc3339(data[key])
    return data


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
