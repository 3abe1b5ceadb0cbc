"""Balanced claiming (issue 17's "syncs spread across daemons"): with ``[daemon]
max_concurrent_runs`` a daemon never runs more than its cap and leaves the rest to its peers,
however one after another the daemons start; without a cap a daemon still leaves a due sync to
a less-loaded live peer; and a sync left to a peer that is gone is run anyway. Always exactly
one runner per sync (the run log's overlaps). Real daemons on a real PostgreSQL; every wait is
on a state."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pg_runlog import overlaps
from pg_support import new_database
from test_pg_daemons import Cluster, synced

from syncd.testing.daemon import DaemonProcess, wait_until


@pytest.fixture
def bare(tmp_path: Path) -> Iterator[Cluster]:
    """A cluster the test sets up itself (its cap, its lease)."""
    c = Cluster(tmp_path, new_database())
    yield c
    c.close()


def held(cluster: Cluster, names: list[str]) -> list[str]:
    """The syncs whose run is waiting on its hold file now."""
    return [n for n in names if cluster.hold(n).with_suffix(".held").exists()]


def starts(cluster: Cluster) -> Counter[int]:
    """Runs started, per daemon pid."""
    return Counter(pid for _, pid, event, _ in cluster.runs() if event == "start")


def held_back(daemon: DaemonProcess) -> list[dict[str, Any]]:
    """The daemon's "run held back" log entries (JSON lines)."""
    entries = []
    for line in daemon.log_text().splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict) and entry.get("event") == "run held back":
                entries.append(entry)
    return entries


def release(cluster: Cluster, names: list[str]) -> None:
    for name in names:
        cluster.hold(name).touch()
    for name in names:
        wait_until(lambda n=name: synced(cluster, n), 120, f"{name} in sync")


def test_a_cap_spreads_the_syncs_evenly_over_daemons_started_one_after_another(
    bare: Cluster,
) -> None:
    cluster = bare
    cluster.setup(cap=3)
    names = [f"c{i}" for i in range(9)]
    for name in names:
        cluster.sync(name, 4, hold=True)
    daemons = []
    for n in (1, 2, 3):
        # each daemon is READY only after the previous one took all it may: no start together
        daemons.append(cluster.start())
        wait_until(lambda n=n: len(held(cluster, names)) == 3 * n or None, 120, f"{3 * n} held")
        # the earlier daemons are at their cap: the new one took the next three
        assert sorted(starts(cluster).values()) == [3] * n
    assert set(starts(cluster)) == {d.pid for d in daemons}
    # the held-back runs are visible: the first daemon left six syncs to its peers
    assert "run held back" in daemons[0].log_text()
    release(cluster, names)
    for daemon in list(cluster.daemons):
        assert daemon.stop() == 0
    runs = cluster.runs()
    assert overlaps(runs, {}) == []
    assert {label for _, _, event, label in runs if event == "start"} == set(names)
    for name in names:
        assert len(set(cluster.b_emails(name))) == len(cluster.b_emails(name)) == 4


def test_without_a_cap_a_due_sync_is_left_to_a_less_loaded_live_peer(bare: Cluster) -> None:
    # a lease long enough that the grace (at most lease_timeout) covers the peer's reload
    cluster = bare
    cluster.setup(lease=30.0)
    first = cluster.start()
    second = cluster.start()
    names = [f"b{i}" for i in range(10)]
    for name in names:
        cluster.sync(name, 3, hold=True)
    # only the first daemon sees the new syncs: first come, first served, it would take them all
    status, body = first.client().request("POST", "/api/v1/reload")
    assert status == 200, body
    # it takes one, and leaves the other nine to its idle peer
    wait_until(
        lambda: len({e["sync"] for e in held_back(first)}) == 9 or None, 120, "nine held back"
    )
    taken = [n for n in names if n not in {e["sync"] for e in held_back(first)}]
    wait_until(lambda: held(cluster, names) == taken or None, 60, "the one it took held")
    status, body = second.client().request("POST", "/api/v1/reload")
    assert status == 200, body
    wait_until(lambda: len(held(cluster, names)) == len(names) or None, 120, "every run held")
    spread = starts(cluster)
    assert set(spread) == {first.pid, second.pid}, spread
    assert min(spread.values()) >= 3, spread
    release(cluster, names)
    for daemon in list(cluster.daemons):
        assert daemon.stop() == 0
    assert overlaps(cluster.runs(), {}) == []


def test_a_sync_left_to_a_peer_that_is_gone_is_run_anyway(bare: Cluster) -> None:
    cluster = bare
    cluster.setup(lease=20.0)
    cluster.sync("busy", 3, hold=True)
    first = cluster.start()
    wait_until(lambda: held(cluster, ["busy"]) or None, 120, "the first daemon's run held")
    # a second daemon, idle (so lighter than the first), announced, then killed: its presence
    # outlives it by up to two thirds of the lease
    second = cluster.start()
    wait_until(
        lambda: (
            cluster.query(
                "SELECT count(*) FROM sync_claim WHERE sync LIKE 'daemon:%%'"
                " AND expires_at > clock_timestamp()"
            )
            == [(2,)]
            or None
        ),
        60,
        "both daemons announced",
    )
    (second_holder,) = [
        h for (h,) in cluster.query("SELECT holder FROM sync_claim") if f":{second.pid}:" in h
    ]
    cluster.kill(second)
    cluster.sync("late", 3)
    cluster.reload()
    wait_until(lambda: synced(cluster, "late"), 120, "the late sync to run on the survivor")
    assert {pid for _, pid, _, label in cluster.runs() if label == "late"} == {first.pid}
    # it was left to the (dead) lighter peer first, then taken: the grace, not first come
    (left,) = [e for e in held_back(first) if e["sync"] == "late"]
    assert left["reason"] == "left to a less-loaded daemon"
    assert left["peer"] == second_holder
    release(cluster, ["busy"])
    assert first.stop() == 0
    assert overlaps(cluster.runs(), cluster.killed) == []


def most_at_once(cluster: Cluster, pid: int) -> int:
    """The most runs one daemon had going at the same time (from the run log)."""
    going = most = 0
    for _, who, event, _ in sorted(cluster.runs()):
        if who == pid:
            going += 1 if event == "start" else -1
            most = max(most, going)
    return most


def test_a_capped_daemon_starts_its_held_back_runs_as_its_runs_end(bare: Cluster) -> None:
    cluster = bare
    cluster.setup(cap=2)
    names = [f"q{i}" for i in range(5)]
    for name in names:
        cluster.sync(name, 3, hold=True)
    daemon = cluster.start()
    wait_until(lambda: len(held(cluster, names)) == 2 or None, 120, "two runs held")
    wait_until(lambda: len(held_back(daemon)) == 3 or None, 60, "three held back")
    # their scheduled time has passed (the next is in an hour): the ends of runs start them
    done: set[str] = set()
    while len(done) < len(names):
        going = wait_until(
            lambda: held(cluster, [n for n in names if n not in done]) or None,
            60,
            "the next held-back runs to start",
        )
        release(cluster, going)
        done.update(going)
    assert sorted(cluster.runs_started()) == sorted(names)
    assert most_at_once(cluster, daemon.pid) == 2
    assert daemon.stop() == 0
    assert overlaps(cluster.runs(), {}) == []
