"""Several real daemons on one real PostgreSQL (issue 17): every sync runs, never two runs of one
sync at once (checked from a run log every daemon appends to), syncs move off a daemon killed
with SIGKILL within lease_timeout, and a daemon frozen past its lease commits nothing after it
wakes (fencing)."""

from __future__ import annotations

import csv
import os
import random
import signal
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pg_runlog import overlaps, read_runlog
from pg_support import new_database

from syncd.testing.daemon import DaemonProcess, free_port, wait_until, write_daemon_config

TESTS = Path(__file__).parent
#: short leases keep the tests quick; generous enough for two CPU hogs beside the suite
LEASE = 4.0


class Cluster:
    """Daemons sharing one config directory and one PostgreSQL database (each its own API
    address and state directory, as on separate machines)."""

    def __init__(self, root: Path, url: str) -> None:
        self.root = root
        self.url = url
        self.data = root / "data"
        self.data.mkdir(parents=True)
        self.runlog = root / "runs.log"
        self.daemons: list[DaemonProcess] = []
        self.killed: dict[int, float] = {}
        self.count = 0

    def sync(
        self, name: str, people: int, hold: bool = False, interval: str = "1h", rate: float = 0
    ) -> None:
        a = self.data / f"{name}-a.csv"
        lines = ["email,first_name,last_name"]
        lines += [f"{name}.{i}@example.com,First{i},Last{i}" for i in range(people)]
        a.write_text("\n".join(lines) + "\n")
        hold_lines = f'hold = "{self.hold(name)}"\nhold_after = 0\n' if hold else ""
        if rate:
            hold_lines += f"rate = {rate}\n"
        body = f"""
        direction = "a-to-b"
        interval = "{interval}"
        [a]
        connector = "csv"
        path = "{a}"
        [b]
        connector = "logcsv"
        path = "{self.data / f"{name}-b.csv"}"
        label = "{name}"
        batch_size = 2
        """
        for directory in self.configs():
            (directory / "syncs" / f"{name}.toml").write_text(textwrap.dedent(body) + hold_lines)

    def hold(self, name: str) -> Path:
        return self.data / f"release-{name}"

    def configs(self) -> list[Path]:
        return [self.root / "config"]

    def setup(self, cap: int = 0, lease: float = LEASE) -> None:
        """``cap``: ``[daemon] max_concurrent_runs`` of every daemon (0: none)."""
        config = self.root / "config"
        path = write_daemon_config(
            config,
            "127.0.0.1:1",  # each daemon gets --listen through SYNCD_LISTEN below
            self.root / "state",
            shutdown_deadline="5s",
            extra=f"""
            [store]
            url = "{self.url}"
            lease_timeout = "{lease}s"
            """,
        )
        if cap:
            text = path.read_text()
            path.write_text(text.replace("[daemon]\n", f"[daemon]\nmax_concurrent_runs = {cap}\n"))

    def reload(self) -> None:
        """Every daemon reads the config directory again (syncs added since they started)."""
        for daemon in self.daemons:
            status, body = daemon.client().request("POST", "/api/v1/reload")
            assert status == 200, body

    def start(self, wait: bool = True) -> DaemonProcess:
        """A daemon more; ``wait``: once it is READY (else the caller waits, so that several
        start together)."""
        self.count += 1
        n = self.count
        listen = f"127.0.0.1:{free_port()}"
        state = self.root / f"state-{n}"
        config = self.root / f"config-{n}"
        if not config.exists():
            # same syncs, same store; its own API address and state directory
            config.mkdir()
            os.symlink(self.root / "config" / "syncs", config / "syncs")
            text = (self.root / "config" / "syncd.toml").read_text()
            text = text.replace('listen = "127.0.0.1:1"', f'listen = "{listen}"')
            text = text.replace(f'state_dir = "{self.root / "state"}"', f'state_dir = "{state}"')
            (config / "syncd.toml").write_text(text)
        env = {
            "SYNCD_PLUGIN_MODULES": "pg_runlog",
            "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
            "SYNCD_TEST_RUNLOG": str(self.runlog),
        }
        daemon = DaemonProcess(
            config, state, listen, env=env, log_path=self.root / f"daemon-{n}.log"
        )
        daemon.start()
        self.daemons.append(daemon)
        if wait:
            daemon.wait_ready()
        return daemon

    def start_together(self, count: int) -> list[DaemonProcess]:
        """``count`` daemons started at once, then waited for: none gets a head start of a
        whole start-up (on a loaded machine, longer than the start stagger) in which it would
        take every due sync."""
        daemons = [self.start(wait=False) for _ in range(count)]
        for daemon in daemons:
            daemon.wait_ready()
        return daemons

    def kill(self, daemon: DaemonProcess) -> None:
        daemon.kill()
        self.killed[daemon.pid] = time.time()
        self.daemons.remove(daemon)

    def runs(self) -> list[tuple[float, int, str, str]]:
        return read_runlog(self.runlog)

    def runs_started(self) -> list[str]:
        """The syncs whose runs started, in the run log's order (one entry per run)."""
        return [label for _, _, event, label in sorted(self.runs()) if event == "start"]

    def b_emails(self, name: str) -> list[str]:
        path = self.data / f"{name}-b.csv"
        if not path.exists():
            return []
        with path.open() as fh:
            return [row["email"] for row in csv.DictReader(fh)]

    def a_emails(self, name: str) -> list[str]:
        with (self.data / f"{name}-a.csv").open() as fh:
            return [row["email"] for row in csv.DictReader(fh)]

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            return list(conn.execute(sql, params).fetchall())

    def close(self) -> None:
        for daemon in self.daemons:
            daemon.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, new_database())
    c.setup()
    yield c
    c.close()


def synced(cluster: Cluster, name: str) -> bool:
    return sorted(cluster.b_emails(name)) == sorted(cluster.a_emails(name))


def test_three_daemons_share_thirty_syncs_never_two_runs_of_one_sync(cluster: Cluster) -> None:
    names = [f"s{i:02d}" for i in range(30)]
    for name in names:
        cluster.sync(name, 5)
    cluster.sync("held", 3, hold=True)
    daemons = cluster.start_together(3)
    wait_until(lambda: all(synced(cluster, n) for n in names), 180, "every sync to have run once")
    # the held sync is running on one daemon; every daemon's status says which, and since when
    wait_until(lambda: cluster.hold("held").with_suffix(".held").exists() or None, 60, "held")
    held_by = {pid for _, pid, event, label in cluster.runs() if label == "held"}
    assert len(held_by) == 1
    (holder_pid,) = held_by
    for daemon in daemons:
        status = daemon.get("/api/v1/status")
        syncs = {s["name"]: s for s in status["syncs"]}
        assert set(syncs) == {*names, "held"}
        claim = syncs["held"]["claim"]
        assert claim is not None and f":{holder_pid}:" in claim["daemon"]
        assert claim["since"] is not None
        text = str(daemon.client().request("GET", "/metrics")[1])
        assert 'syncd_sync_claimed_since_timestamp_seconds{holder="' in text
        assert daemon.get("/healthz")["status"] == "ok"
    cluster.hold("held").touch()
    wait_until(lambda: synced(cluster, "held"), 60, "the held sync to finish")
    for daemon in list(cluster.daemons):
        assert daemon.stop() == 0
    runs = cluster.runs()
    assert overlaps(runs, {}) == []
    ran = {label for _, _, event, label in runs if event == "start"}
    assert ran == {*names, "held"}
    # spread: no single daemon ran everything
    by_pid = {pid for _, pid, event, _ in runs if event == "start"}
    assert len(by_pid) >= 2, by_pid
    for name in names:
        assert len(set(cluster.b_emails(name))) == len(cluster.b_emails(name)) == 5


def test_kill_nine_moves_syncs_within_the_lease_no_duplicate_no_lost_edit(
    cluster: Cluster,
) -> None:
    rng = random.Random(17)
    names = [f"k{i}" for i in range(4)]
    for name in names:
        cluster.sync(name, 3, hold=True)
        cluster.hold(name).touch()  # no holding while the first runs go through
    for _ in range(3):
        cluster.start()
    wait_until(lambda: all(synced(cluster, n) for n in names), 180, "the first runs")
    moves = [_kill_mid_run(cluster, rng.choice(names), n, rng) for n in range(20)]
    # clean final runs: every edit arrived exactly once, nothing is left pending
    for name in names:
        cluster.hold(name).touch()
    for name in names:
        wait_until(lambda n=name: synced(cluster, n), 120, f"{name} in sync")
    for daemon in cluster.daemons:
        for name in names:
            wait_until(
                lambda d=daemon, n=name: d.get(f"/api/v1/syncs/{n}")["state"] != "running",
                60,
                "runs to end",
            )
    for daemon in list(cluster.daemons):
        assert daemon.stop() == 0
    assert overlaps(cluster.runs(), cluster.killed) == []
    for name in names:
        emails = cluster.b_emails(name)
        assert len(emails) == len(set(emails)), f"{name}: a duplicate"
        assert sorted(emails) == sorted(cluster.a_emails(name)), f"{name}: an edit was lost"
    assert cluster.query("SELECT count(*) FROM pending_write") == [(0,)]
    # the journal keeps settled entries as history; none is left unsettled
    assert cluster.query("SELECT count(*) FROM journal WHERE outcome IN ('pending', 'failed')") == [
        (0,)
    ]
    assert cluster.query("SELECT count(*) FROM run WHERE outcome = 'running'") == [(0,)]
    assert len(moves) == 20
    # taken over by the lease, not by the schedule (the syncs' interval is an hour): a bound
    # well past lease_timeout, since a loaded machine delays the start of the successor's run
    assert max(moves) <= LEASE + 30.0, moves


def _kill_mid_run(cluster: Cluster, name: str, n: int, rng: random.Random) -> float:
    """Edit ``name``'s source, start its run, kill -9 the daemon running it in the middle of
    its writes, start a replacement; how long until another daemon started the sync."""
    hold = cluster.hold(name)
    # the previous round's run of this sync (the one that took it over) has ended
    wait_until(
        lambda: _running(cluster.runs(), name, cluster.killed) is None or None, 60, "a quiet sync"
    )
    hold.unlink()
    hold.with_suffix(".held").unlink(missing_ok=True)
    source = cluster.data / f"{name}-a.csv"
    # the CSV connector gave the file an id column on its first read
    record_id = f"edit{n:02d}{rng.getrandbits(24):06x},"
    prefix = record_id if source.read_text().startswith("id,") else ""
    with source.open("a") as fh:
        fh.write(f"{prefix}{name}.edit{n}@example.com,Edit{n},Person\n")

    def held() -> bool:
        if hold.with_suffix(".held").exists():
            return True
        if _running(cluster.runs(), name, cluster.killed) is None:
            # a trigger that found the sync still finishing elsewhere (409) is tried again
            rng.choice(cluster.daemons).client().request("POST", f"/api/v1/syncs/{name}/trigger")
        return False

    wait_until(held, 60, f"{name} held")
    running = wait_until(
        lambda: _running(cluster.runs(), name, cluster.killed), 60, f"{name}'s run in the log"
    )
    (victim,) = [d for d in cluster.daemons if d.pid == running]
    cluster.kill(victim)
    killed_at = cluster.killed[victim.pid]
    hold.touch()
    cluster.start()  # a replacement keeps three

    def taken() -> float | None:
        for stamp, _, event, label in cluster.runs():
            if label == name and event == "start" and stamp > killed_at:
                return stamp
        return None

    return wait_until(taken, 120, f"{name} to move to another daemon") - killed_at


def _running(
    rows: list[tuple[float, int, str, str]], name: str, killed: dict[int, float] | None = None
) -> int | None:
    """The pid running ``name`` now (its last start has no end yet), if exactly one."""
    open_runs: set[int] = set()
    for _, pid, event, label in sorted(rows):
        if label != name:
            continue
        if event == "start":
            open_runs.add(pid)
        else:
            open_runs.discard(pid)
    left = open_runs - set(killed or {})
    return next(iter(left)) if len(left) == 1 else None


SNAPSHOT = (
    "SELECT 'link', count(*), coalesce(max(id), 0) FROM link",
    "SELECT 'run', count(*), coalesce(max(id), 0) FROM run",
    "SELECT 'run_done', count(*), 0 FROM run WHERE outcome <> 'running'",
    "SELECT 'journal', count(*), coalesce(max(id), 0) FROM journal",
    "SELECT 'pending', count(*), coalesce(max(id), 0) FROM pending_write",
    "SELECT 'issues', count(*), coalesce(max(id), 0) FROM record_issue",
    "SELECT 'state', count(*), 0 FROM sync_state",
    "SELECT 'claim', count(*), coalesce(max(token), 0) FROM sync_claim",
    "SELECT 'kv', count(*), 0 FROM key_value",
)


def test_a_daemon_frozen_past_its_lease_commits_nothing_after_waking(cluster: Cluster) -> None:
    cluster.sync("frozen", 6, hold=True)
    first = cluster.start()
    hold = cluster.hold("frozen")
    wait_until(lambda: hold.with_suffix(".held").exists() or None, 60, "the run to be held")
    assert _running(cluster.runs(), "frozen") == first.pid
    first.send(signal.SIGSTOP)
    try:
        frozen_at = time.time()
        second = cluster.start()
        wait_until(
            lambda: _running(
                [r for r in cluster.runs() if r[1] == second.pid and r[0] > frozen_at], "frozen"
            ),
            120,
            "the second daemon to take the sync over",
        )
        hold.touch()
        wait_until(lambda: synced(cluster, "frozen"), 60, "the second daemon's run")
        wait_until(lambda: second.get("/api/v1/syncs/frozen")["state"] != "running", 60, "its end")
        before = [cluster.query(q)[0] for q in SNAPSHOT]
    finally:
        first.send(signal.SIGCONT)
    # the woken daemon goes on with its held run: it must commit nothing of it
    wait_until(
        lambda: any(
            pid == first.pid and event == "end" and label == "frozen"
            for _, pid, event, label in cluster.runs()
        ),
        60,
        "the woken daemon's run to end",
    )
    wait_until(lambda: "lost its claim" in first.log_text(), 60, "the lost claim to be logged")
    after = [cluster.query(q)[0] for q in SNAPSHOT]
    assert after == before
    assert "lost its claim" in first.log_text()
    for daemon in list(cluster.daemons):
        assert daemon.stop() == 0
