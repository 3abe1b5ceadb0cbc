"""The run history as an SVG chart, drawn on the server: created / updated / failed per run.

No charting library, nothing fetched: a string of SVG, every text and attribute escaped. The bars
use presentation attributes (``fill``), not ``style``, so a Content-Security-Policy without
``unsafe-inline`` lets them through; axis text is ``currentColor`` and follows the page's colour
scheme. The y axis is logarithmic (a first merge creates 100,000 contacts, a later run updates
three: both stay readable), each bar carries a ``<title>`` with its run and exact number, and the
chart has a ``<title>``/``<desc>`` for screen readers (the run table beside it has the figures).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any, Protocol

#: the series: name, the run counts that make it, colour (readable on light and dark)
SERIES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("created", ("created_a", "created_b"), "#2f9e5a"),
    ("updated", ("updated_a", "updated_b"), "#3f7fd9"),
    ("failed", ("failed",), "#d9483f"),
)
WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 28, 40
#: the most runs drawn (the newest); older ones are in the table
MAX_RUNS = 60


class RunLike(Protocol):
    id: int
    started_at: datetime
    outcome: str
    counts: dict[str, int]


@dataclass(frozen=True)
class Bar:
    run_id: int
    series: str
    value: int
    x: float
    y: float
    width: float
    height: float


def _text(value: object) -> str:
    return escape(str(value), quote=True)


def series_values(counts: Mapping[str, Any]) -> dict[str, int]:
    """A run's counts as the chart's series."""
    found = {}
    for name, keys, _ in SERIES:
        total = 0
        for key in keys:
            value = counts.get(key, 0)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                total += value
        found[name] = total
    return found


def _scale(value: int, top: int) -> float:
    """The height fraction of ``value`` on a log scale whose top is ``top`` (≥ 1)."""
    if value <= 0:
        return 0.0
    return math.log10(1 + value) / math.log10(1 + top)


def _ticks(top: int) -> list[int]:
    ticks = [0]
    power = 1
    while power <= top:
        ticks.append(power)
        power *= 10
    return ticks


def _tick_label(value: int) -> str:
    if value >= 1_000_000:
        return f"{value // 1_000_000}M"
    if value >= 1000:
        return f"{value // 1000}k"
    return str(value)


def bars(runs: Sequence[RunLike]) -> list[Bar]:
    """The bars of the chart, oldest run first (pure: what the tests measure)."""
    ordered = sorted(runs, key=lambda r: (r.started_at, r.id))[-MAX_RUNS:]
    values = [series_values(r.counts) for r in ordered]
    top = max([1, *(v for run in values for v in run.values())])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(ordered))
    bar_w = max(1.0, min(14.0, slot * 0.8 / len(SERIES)))
    found = []
    for index, (run, run_values) in enumerate(zip(ordered, values, strict=True)):
        start = LEFT + index * slot + (slot - bar_w * len(SERIES)) / 2
        for number, (name, _, _) in enumerate(SERIES):
            value = run_values[name]
            height = _scale(value, top) * plot_h
            found.append(
                Bar(
                    run.id,
                    name,
                    value,
                    round(start + number * bar_w, 2),
                    round(TOP + plot_h - height, 2),
                    round(bar_w, 2),
                    round(height, 2),
                )
            )
    return found


def runs_chart(runs: Sequence[RunLike], title: str = "Runs") -> str:
    """The SVG (an ``<svg>`` element, to be put in the page as it is)."""
    ordered = sorted(runs, key=lambda r: (r.started_at, r.id))[-MAX_RUNS:]
    plot_h = HEIGHT - TOP - BOTTOM
    totals = {name: 0 for name, _, _ in SERIES}
    for run in ordered:
        for name, value in series_values(run.counts).items():
            totals[name] += value
    span = ""
    if ordered:
        first, last = ordered[0].started_at, ordered[-1].started_at
        span = f" from {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC"
    figures = ", ".join(f"{totals[name]} {name}" for name, _, _ in SERIES)
    desc = f"{len(ordered)} runs{span}: {figures} (log scale)"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="runs-chart" viewBox="0 0 {WIDTH} '
        f'{HEIGHT}" width="100%" role="img" aria-labelledby="runs-chart-title runs-chart-desc">',
        f'<title id="runs-chart-title">{_text(title)}</title>',
        f'<desc id="runs-chart-desc">{_text(desc)}</desc>',
    ]
    top = max([1, *(v for run in ordered for v in series_values(run.counts).values())])
    for tick in _ticks(top):
        y = round(TOP + plot_h - _scale(tick, top) * plot_h, 2)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}" stroke="currentColor" '
            'stroke-opacity="0.15"/>'
        )
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4}" text-anchor="end" font-size="11" '
            f'fill="currentColor">{_text(_tick_label(tick))}</text>'
        )
    if not ordered:
        parts.append(
            f'<text x="{WIDTH / 2}" y="{TOP + plot_h / 2}" text-anchor="middle" font-size="14" '
            'fill="currentColor">no runs yet</text>'
        )
    colours = {name: colour for name, _, colour in SERIES}
    by_run = {run.id: run for run in ordered}
    for bar in bars(ordered):
        run = by_run[bar.run_id]
        label = (
            f"run {run.id} ({run.started_at:%Y-%m-%d %H:%M} UTC, {run.outcome}): "
            f"{bar.value} {bar.series}"
        )
        parts.append(
            f'<rect class="bar {bar.series}" x="{bar.x}" y="{bar.y}" width="{bar.width}" '
            f'height="{bar.height}" fill="{colours[bar.series]}">'
            f"<title>{_text(label)}</title></rect>"
        )
    if ordered:
        slot = (WIDTH - LEFT - RIGHT) / len(ordered)
        step = max(1, math.ceil(len(ordered) / 8))
        for index in range(0, len(ordered), step):
            run = ordered[index]
            x = round(LEFT + index * slot + slot / 2, 2)
            parts.append(
                f'<text x="{x}" y="{HEIGHT - BOTTOM + 14}" text-anchor="middle" font-size="10" '
                f'fill="currentColor">{_text(f"#{run.id}")}</text>'
            )
            parts.append(
                f'<text x="{x}" y="{HEIGHT - BOTTOM + 26}" text-anchor="middle" font-size="9" '
                f'fill="currentColor" fill-opacity="0.7">{_text(f"{run.started_at:%m-%d %H:%M}")}'
                "</text>"
            )
    legend_x = LEFT
    for name, _, colour in SERIES:
        parts.append(
            f'<rect x="{legend_x}" y="8" width="10" height="10" fill="{colour}"/>'
            f'<text x="{legend_x + 14}" y="17" font-size="11" fill="currentColor">'
            f"{_text(name)}</text>"
        )
        legend_x += 80
    parts.append(
        f'<text x="{WIDTH - RIGHT}" y="17" text-anchor="end" font-size="10" '
        'fill="currentColor" fill-opacity="0.7">log scale</text>'
    )
    parts.append("</svg>")
    return "".join(parts)
