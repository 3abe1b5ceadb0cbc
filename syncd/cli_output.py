"""How the command line says things to a person: one way for each kind of value.

``--json`` output is for scripts and keeps raw numbers; these helpers are for the human output of
``sync``, ``status``, ``history``, ``errors``, ``links``, ``trigger --wait`` and ``make demo``, so
that a duration, a count or a run reads the same wherever it is printed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: nouns whose plural is not the noun and an "s"
_IRREGULAR = {"entry": "entries", "try": "tries", "is": "are", "was": "were", "has": "have"}


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """``1 sync``, ``2 syncs``, ``0 records``: the count and the noun agreeing with it."""
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {plural_form or _IRREGULAR.get(noun) or noun + 's'}"


def noun(count: int, singular: str, plural_form: str | None = None) -> str:
    """The noun alone, agreeing with ``count`` (``record``/``records``)."""
    return plural(count, singular, plural_form).split(" ", 1)[1]


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


def sides(counts: Mapping[str, Any], key: str, a: str = "a", b: str = "b") -> str:
    """``created 2 on a, 1 on b`` style pairs for one count of a run."""
    return f"{counts.get(f'{key}_a', 0)} on {a}, {counts.get(f'{key}_b', 0)} on {b}"


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
