"""A real daemon syncing two CSV files of ten people, for the journal, undo and review tests of
the API (test_undo_api) and of the console (test_console_history, its browser twin).

Sync ``s``: ``a.csv`` (phones of series 1) and ``b.csv`` (series 2) in ``tmp_path/data``, ``a``
wins, deletions are held for review; the daemon has finished its first run when it is handed
over, and its log must hold no traceback when it stops.
"""

from __future__ import annotations

import contextlib
import csv
import textwrap
from collections.abc import Iterator
from pathlib import Path

from syncd.testing.daemon import DaemonProcess, free_port, wait_until, write_daemon_config


def write_people(path: Path, series: int, count: int) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "first_name", "phone"])
        for i in range(count):
            writer.writerow([f"p{i}@x.com", f"P{i}", f"+44 20 7946 {series}{i:03d}"])


def phones(path: Path) -> dict[str, str]:
    """Email → phone of the live (not archived) people of a CSV file."""
    with path.open(newline="") as handle:
        return {
            r["email"]: r["phone"]
            for r in csv.DictReader(handle)
            if r.get("archived", "").lower() != "true"
        }


def delete_from_a(data: Path, *emails: str) -> None:
    """Remove the people with these emails from ``a.csv``."""
    with (data / "a.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    kept = [r for r in rows if not set(emails) & set(r)]
    with (data / "a.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows(kept)


def finished(daemon: DaemonProcess, runs: int) -> bool:
    """At least ``runs`` runs of sync ``s`` are over, and the last of them has let go of the
    sync (the history says a run finished before its lock is released: an undo or a review
    right after would be refused as "already running")."""
    done = [r for r in daemon.get("/api/v1/syncs/s/runs")["runs"] if r["outcome"] != "running"]
    return len(done) >= runs and daemon.not_running("s")


@contextlib.contextmanager
def csv_daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    """The daemon of sync ``s`` (see the module), after its first run."""
    config, state, data = tmp_path / "config", tmp_path / "state", tmp_path / "data"
    data.mkdir()
    listen = f"127.0.0.1:{free_port()}"
    write_daemon_config(config, listen, state, shutdown_deadline="10s")
    write_people(data / "a.csv", 1, 10)
    write_people(data / "b.csv", 2, 10)
    (config / "syncs" / "s.toml").write_text(
        textwrap.dedent(
            f"""
            interval = "1h"
            winner = "a"
            deletions = "review"
            [a]
            connector = "csv"
            path = "{data / "a.csv"}"
            [b]
            connector = "csv"
            path = "{data / "b.csv"}"
            """
        )
    )
    process = DaemonProcess(config, state, listen)
    with process:
        process.wait_ready()
        wait_until(lambda: finished(process, 1), 120, "the first run")
        yield process
        log = process.log_text()
    assert "Traceback" not in log, log[-5000:]
