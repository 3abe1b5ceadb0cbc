"""How the command line says things to a person: one way for each kind of value.

``--json`` output is for scripts and keeps raw numbers; these helpers are for the human output of
``sync``, ``status``, ``history``, ``errors``, ``links``, ``trigger --wait`` and ``make demo``, so
that a duration, a count or a run reads the same wherever it is printed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

#: nouns whose plural is not the noun and an "s"
_IRREGULAR = {"entry": "entries", "try": "tries", "is": "are", "was": "were", "has": "have"}


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """``1 sync``, ``2 syncs``, ``0 records``: the count and the noun agreeing with it."""
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {plural_form or _IRREGULAR.get(noun) or noun + 's'}"


def duration(seconds: float | None) -> str:
    """A run's duration, always the same way: seconds with two decimals below a minute
    (``0.41s``, ``12.30s``), minutes and seconds above (``2m05s``), hours past an hour."""
    if seconds is None:
        return "-"
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.2f}s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def writes(counts: Mapping[str, Any]) -> int:
    """How many records a run wrote (created, updated or archived, on either side)."""
    return sum(
        int(counts.get(f"{kind}_{side}", 0) or 0)
        for kind in ("created", "updated", "archived")
        for side in ("a", "b")
    )


def table(rows: Sequence[Sequence[str]], header: Sequence[str] | None = None) -> list[str]:
    """Rows as aligned columns (two spaces apart; the last column is not padded)."""
    everything = [list(header)] if header is not None else []
    everything += [list(row) for row in rows]
    if not everything:
        return []
    columns = max(len(row) for row in everything)
    for row in everything:
        row += [""] * (columns - len(row))
    widths = [max(len(row[i]) for row in everything) for i in range(columns - 1)]
    lines = []
    for row in everything:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return lines


# --- what the commands print -------------------------------------------------------------------


def run_counts(counts: Mapping[str, Any]) -> list[str]:
    """The counts of a finished run, as ``syncd sync`` prints them (two lines, label then
    count, so that no noun has to agree with a number)."""
    c = {key: int(value or 0) for key, value in counts.items()}
    return [
        f"read a {c.get('read_a', 0)}, b {c.get('read_b', 0)}; linked {c.get('linked', 0)}; "
        f"created a {c.get('created_a', 0)}, b {c.get('created_b', 0)}; "
        f"updated a {c.get('updated_a', 0)}, b {c.get('updated_b', 0)}; "
        f"archived a {c.get('archived_a', 0)}, b {c.get('archived_b', 0)}",
        f"conflicts {c.get('conflicts', 0)}; failed {c.get('failed', 0)}; "
        f"excluded {c.get('excluded', 0)}; ambiguous {c.get('ambiguous', 0)}",
    ]


def history_lines(runs: Iterable[Any]) -> list[str]:
    """``syncd history``: one row per run (``RunRow``), newest first, under a header."""
    rows = []
    messages: dict[int, str] = {}
    for index, run in enumerate(runs):
        took = (run.finished_at - run.started_at).total_seconds() if run.finished_at else None
        c = run.counts
        rows.append(
            [
                str(run.id),
                f"{run.started_at:%Y-%m-%d %H:%M:%S}",
                run.outcome,
                duration(took),
                f"{c.get('created_a', 0)}/{c.get('created_b', 0)}",
                f"{c.get('updated_a', 0)}/{c.get('updated_b', 0)}",
                str(c.get("failed", 0)),
            ]
        )
        if run.message:
            messages[index] = run.message
    header = ["RUN", "STARTED (UTC)", "OUTCOME", "TOOK", "CREATED a/b", "UPDATED a/b", "FAILED"]
    lines = table(rows, header)
    out = [lines[0]]
    for index, line in enumerate(lines[1:]):
        out.append(line)
        if index in messages:
            out.append(f"    {messages[index]}")
    return out


def _reason_without(email: str | None, reason: str) -> str:
    """An issue's reason, without the email it starts with when the row shows that email."""
    if email and reason.casefold().startswith(email.casefold()):
        return reason[len(email) :].lstrip()
    return reason


def issue_lines(issues: Iterable[Mapping[str, Any]]) -> list[str]:
    """``syncd errors``: a header, then one row per record that did not sync."""
    rows = []
    for issue in issues:
        email = issue.get("email") or None
        reason = _reason_without(email, str(issue.get("reason") or ""))
        if issue.get("next_attempt_at"):
            reason += f" (retried after {timestamp(issue['next_attempt_at'])})"
        rows.append(
            [str(issue["side"]), str(issue["record_id"]), str(issue["kind"]), email or "-", reason]
        )
    return table(rows, ["SIDE", "RECORD", "KIND", "EMAIL", "REASON"])


def link_lines(links: Sequence[Any]) -> list[str]:
    """``syncd links``: a header, one row per link, and how many."""
    rows = [[link.a_id or "-", link.b_id or "-", link.state] for link in links]
    return [*table(rows, ["A", "B", "STATE"]), plural(len(links), "link")]


def timestamp(value: Any) -> str:
    """A moment as the human output shows it: UTC to the second (``2026-12-01 21:42:07Z``)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return f"{value:%Y-%m-%d %H:%M:%S}Z"
    return str(value)
