"""``logcsv``: the test CSV connector that appends each run's start and end to a log shared by
every daemon (``$SYNCD_TEST_RUNLOG``), with the daemon's pid: the multi-daemon tests read it to
prove that no two runs of one sync ever overlapped. Loaded with
``SYNCD_PLUGIN_MODULES=pg_runlog`` (``tests/`` on ``PYTHONPATH``)."""

from __future__ import annotations

import itertools
import os
import time
from typing import Any

from syncd.connector import Setting
from syncd.hookspecs import hookimpl
from syncd.testing.testcsv import SwitchableCsvConnector


def _log(event: str, label: str) -> None:
    path = os.environ.get("SYNCD_TEST_RUNLOG")
    if not path or not label:
        return
    line = f"{time.time():.6f} {os.getpid()} {event} {label}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)  # one write with O_APPEND: lines of several processes never mix
    finally:
        os.close(fd)


class LoggingCsvConnector(SwitchableCsvConnector):
    name = "logcsv"
    title = "CSV file with test switches and a run log"
    settings = (  # type: ignore[assignment]
        *SwitchableCsvConnector.settings,
        Setting("label", "the sync's name in the run log", default=""),
    )

    async def open(self) -> None:
        _log("start", str(self.config.get("label") or ""))
        await super().open()

    async def close(self) -> None:
        await super().close()
        _log("end", str(self.config.get("label") or ""))


def read_runlog(path: Any) -> list[tuple[float, int, str, str]]:
    if not os.path.exists(path):
        return []
    rows = []
    with open(path) as fh:
        for line in fh:
            stamp, pid, event, label = line.split()
            rows.append((float(stamp), int(pid), event, label))
    return rows


def overlaps(rows: list[tuple[float, int, str, str]], killed: dict[int, float]) -> list[str]:
    """Runs of one sync by two processes at once. A killed process's open run ends at its kill."""
    spans: dict[str, list[tuple[float, float, int]]] = {}
    open_runs: dict[tuple[str, int], float] = {}
    for stamp, pid, event, label in sorted(rows):
        if event == "start":
            open_runs[(label, pid)] = stamp
        elif (label, pid) in open_runs:
            spans.setdefault(label, []).append((open_runs.pop((label, pid)), stamp, pid))
    for (label, pid), start in open_runs.items():
        spans.setdefault(label, []).append((start, killed.get(pid, float("inf")), pid))
    found = []
    for label, runs in spans.items():
        runs.sort()
        for (s1, e1, p1), (s2, _, p2) in itertools.pairwise(runs):
            if s2 < e1:
                found.append(f"{label}: pid {p1} [{s1:.3f}, {e1:.3f}] and pid {p2} from {s2:.3f}")
    return found


@hookimpl
def register_connectors(register: Any) -> None:
    register(LoggingCsvConnector)
