"""30 CSV syncs over 1, 2 and 3 daemons sharing one PostgreSQL (issue 17's second figure).

Starts its own PostgreSQL (the ``pgserver`` wheel, as the test suite does) and, per variant, a
fresh database, 30 syncs (CSV → test CSV, ``a-to-b``) and N real ``syncd run`` processes with
the same config directory. Every sync's first write batch waits for one "go" file: the daemons
start, share the syncs out among themselves as they would in production (balanced claiming:
each daemon runs at most ``--cap`` syncs at once, ``[daemon] max_concurrent_runs``, and leaves
the rest to its peers), and the clock starts when every daemon is up and as many runs have
begun and are waiting as the caps allow (all 30 without a cap); the other runs start as
running ones end. So the figure is the syncs' work over N daemons, not N start-ups (a daemon's
start, mostly imports, is seconds on a loaded machine). The variants alternate (1, 2, 3, then
3, 2, 1, …) and each figure is the median of ``--repeats``.

Why a cap: a daemon runs every due sync at once, so without one, I/O-bound syncs all wait on
their apps together in one daemon and a second daemon adds nothing; with one (as a user sets it
for the memory, connections and vendor concurrency one box can give), throughput grows with
daemons until the apps' rate limits are reached. CPU-bound syncs need no cap to gain from a
second process on a second core, but keep it for the same setting.

Two kinds of sync:

* ``io``: each write call to the app takes ``--latency`` seconds (``delay``), as a vendor's API
  would, ``--people`` contacts a sync in batches of 2: the syncs wait on the apps;
* ``cpu``: ``--cpu-people`` contacts a sync in batches of 100, no latency: the syncs are
  syncd's own work (reading, matching, hashing, the store's writes).

    .venv/bin/python bench/daemons.py                  # both kinds, 1, 2, 3 daemons, 3 repeats
    .venv/bin/python bench/daemons.py --kinds cpu --repeats 1
    .venv/bin/python bench/daemons.py --cap 0          # no cap: first come, first served

Prints, per kind and daemon count: seconds from "go" until every sync has written everything,
the daemons' CPU seconds over that time (all daemons together), PostgreSQL's, the seconds the
daemons' threads spent ready but waiting for a core (other processes' load), syncs per minute,
contacts per second, the speed-up against the first row, how the runs were spread over the
daemons, and the machine's load average (other processes share the cores).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import textwrap
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import pg_support  # noqa: E402  (tests/ on the path: the suite's own PostgreSQL helper)
from test_pg_daemons import LEASE, Cluster  # noqa: E402

from syncd.testing.daemon import wait_until  # noqa: E402

SYNCS = 30


class BenchCluster(Cluster):
    """The tests' cluster, with syncs of a given size and write latency."""

    def sync_kind(self, name: str, people: int, batch: int, delay: float, go: Path) -> None:
        a = self.data / f"{name}-a.csv"
        lines = ["email,first_name,last_name"]
        lines += [f"{name}.{i}@example.com,First{i},Last{i}" for i in range(people)]
        a.write_text("\n".join(lines) + "\n")
        body = f"""
        direction = "a-to-b"
        interval = "1h"
        [a]
        connector = "csv"
        path = "{a}"
        [b]
        connector = "logcsv"
        path = "{self.data / f"{name}-b.csv"}"
        label = "{name}"
        batch_size = {batch}
        delay = {delay}
        hold = "{go}"
        hold_after = 0
        """
        (self.root / "config" / "syncs" / f"{name}.toml").write_text(textwrap.dedent(body))


def written(cluster: BenchCluster, name: str, people: int) -> bool:
    path = cluster.data / f"{name}-b.csv"
    if not path.exists():
        return False
    with path.open() as fh:
        return sum(1 for _ in fh) - 1 >= people


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def runqueue_seconds(pid: int) -> float:
    """Seconds the process's threads spent runnable but waiting for a CPU so far (schedstat)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            total += int(task.read_text().split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return total / 1e9


def postgres_cpu() -> dict[int, float]:
    """CPU seconds so far of the suite's PostgreSQL: its postmaster and every backend."""
    try:
        postmaster = int((Path(pg_support.socket_dir()) / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError):
        return {}
    found = {postmaster: cpu_seconds(postmaster)}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == postmaster:
            found[int(entry.name)] = cpu_seconds(int(entry.name))
    return found


def cpu_since(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def one(
    kind: str, daemons: int, people: int, batch: int, delay: float, connections: int, cap: int
) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="syncd-bench-d-") as tmp:
        cluster = BenchCluster(Path(tmp), pg_support.new_database())
        cluster.setup()
        toml = Path(tmp) / "config" / "syncd.toml"
        # the production lease (the tests' short one makes the daemons that find a sync busy
        # ask again every 1.3 s, which on a loaded machine is CPU taken from the syncs)
        text = toml.read_text().replace(f'lease_timeout = "{LEASE}s"', 'lease_timeout = "30s"')
        text = text.replace("[store]\n", f"[store]\nconnections = {connections}\n")
        if cap:
            text = text.replace("[daemon]\n", f"[daemon]\nmax_concurrent_runs = {cap}\n")
        toml.write_text(text)
        go = Path(tmp) / "go"
        names = [f"s{i:02d}" for i in range(SYNCS)]
        for name in names:
            cluster.sync_kind(name, people, batch, delay, go)
        try:
            for _ in range(daemons):
                cluster.start(wait=False)
            for daemon in cluster.daemons:
                daemon.wait_ready()

            first = min(SYNCS, daemons * cap) if cap else SYNCS

            def started() -> bool:
                return len({r[3] for r in cluster.runs() if r[2] == "start"}) >= first

            wait_until(started, 300, "the first runs to start")
            pids = [d.pid for d in cluster.daemons]
            load = os.getloadavg()[0]
            cpu = sum(cpu_seconds(pid) for pid in pids)
            pg_before = postgres_cpu()
            waited = sum(runqueue_seconds(pid) for pid in pids)
            began = time.monotonic()
            go.touch()
            wait_until(
                lambda: all(written(cluster, n, people) for n in names), 1800, "every sync written"
            )
            took = time.monotonic() - began
            cpu = sum(cpu_seconds(pid) for pid in pids) - cpu
            pg_cpu = cpu_since(pg_before, postgres_cpu())
            waited = sum(runqueue_seconds(pid) for pid in pids) - waited
            spread = Counter(r[1] for r in cluster.runs() if r[2] == "start")
        finally:
            cluster.close()
    return {
        "seconds": took,
        "cpu": cpu,
        "pg_cpu": pg_cpu,
        "waited": waited,
        "spread": sorted(spread.values(), reverse=True),
        "load": load,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--daemons", default="1,2,3")
    parser.add_argument("--kinds", default="io,cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--people", type=int, default=40, help="contacts per io sync")
    parser.add_argument("--latency", type=float, default=0.25, help="seconds per io write call")
    parser.add_argument("--cpu-people", type=int, default=1000, help="contacts per cpu sync")
    parser.add_argument(
        "--connections", default="4", help="[store] connections of each daemon (e.g. 1,4)"
    )
    parser.add_argument(
        "--cap",
        type=int,
        default=10,
        help="[daemon] max_concurrent_runs of each daemon (0: no cap)",
    )
    args = parser.parse_args()
    variants = [
        (int(n), int(c)) for n in args.daemons.split(",") for c in args.connections.split(",")
    ]
    counts = sorted({n for n, _ in variants})
    cap = f"at most {args.cap} runs at once each" if args.cap else "no cap on runs"
    print(
        f"{SYNCS} syncs over 1..{max(counts)} daemons on one PostgreSQL ({cap});"
        f" {os.cpu_count()} cores"
    )
    for kind in args.kinds.split(","):
        if kind == "io":
            people, batch, delay = args.people, 2, args.latency
            what = f"io: {people} contacts a sync, {people // 2} write calls of {delay} s each"
        else:
            people, batch, delay = args.cpu_people, 100, 0.0
            what = f"cpu: {people} contacts a sync, no latency"
        runs: dict[tuple[int, int], list[dict[str, object]]] = {v: [] for v in variants}
        for repeat in range(args.repeats):
            for v in variants if repeat % 2 == 0 else list(reversed(variants)):
                runs[v].append(one(kind, v[0], people, batch, delay, v[1], args.cap))
        print(what + f"; medians of {args.repeats}")
        print(
            f"{'daemons':>8} {'conns':>6} {'seconds':>8} {'cpu s':>6} {'pg cpu':>6}"
            f" {'runq s':>6} {'syncs/min':>10} {'contacts/s':>11}"
            f" {'x first':>8} {'load':>5}  runs per daemon"
        )
        base = None
        for v in variants:
            secs = statistics.median(float(r["seconds"]) for r in runs[v])  # type: ignore[arg-type]
            base = base or secs
            load = statistics.median(float(r["load"]) for r in runs[v])  # type: ignore[arg-type]
            cpu = statistics.median(float(r["cpu"]) for r in runs[v])  # type: ignore[arg-type]
            pg_cpu = statistics.median(float(r["pg_cpu"]) for r in runs[v])  # type: ignore[arg-type]
            waited = statistics.median(float(r["waited"]) for r in runs[v])  # type: ignore[arg-type]
            spreads = " | ".join("/".join(map(str, r["spread"])) for r in runs[v])  # type: ignore[call-overload]
            print(
                f"{v[0]:>8} {v[1]:>6} {secs:>8.1f} {cpu:>6.1f} {pg_cpu:>6.1f} {waited:>6.1f}"
                f" {SYNCS / secs * 60:>10.1f}"
                f" {SYNCS * people / secs:>11.0f} {base / secs:>8.2f} {load:>5.1f}  {spreads}"
            )


if __name__ == "__main__":
    main()
