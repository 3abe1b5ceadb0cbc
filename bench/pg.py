"""PostgreSQL beside SQLite (issue 17). Starts its own PostgreSQL (the ``pgserver`` wheel).

1. The engine benchmark (``bench/engine.py``'s phases) on each store, each size in a fresh
   process, and the ratio PostgreSQL / SQLite. Target: the first merge at 100,000 a side on
   PostgreSQL ≤ 1.5 x SQLite's time.
2. 30 CSV syncs (``--people`` contacts each, write batches rate-limited per sync as an app
   would) over 1, 2 and 3 daemons sharing the database: seconds until every sync has run once,
   and syncs per minute.

    .venv/bin/python bench/pg.py                      # 10,000 and 100,000; daemons 1, 2, 3
    .venv/bin/python bench/pg.py --sizes 10000 --skip-daemons
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import pg_support  # noqa: E402  (tests/ on the path: the suite's own PostgreSQL helper)


def engine(sizes: list[int], repeats: int) -> None:
    print(f"engine benchmark on both stores, medians of {repeats} runs (seconds)")
    print(f"{'contacts/side':>14} {'store':>10} {'merge':>7} {'no-change':>10} {'1% run':>7}")
    for size in sizes:
        figures: dict[str, dict[str, float]] = {}
        for kind in ("sqlite", "postgresql"):
            runs = []
            for _ in range(repeats):
                command = [sys.executable, str(ROOT / "bench" / "engine.py"), "--one", str(size)]
                if kind == "postgresql":
                    command += ["--pg-url", pg_support.new_database()]
                out = subprocess.run(command, capture_output=True, text=True, check=True)
                runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            fig = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            figures[kind] = fig
            print(
                f"{size:>14,} {kind:>10} {fig['merge']:>7.2f} {fig['no_change']:>10.2f}"
                f" {fig['one_percent']:>7.2f}"
            )
        ratio = figures["postgresql"]["merge"] / figures["sqlite"]["merge"]
        verdict = "≤" if ratio <= 1.5 else ">"
        print(f"{size:>14,} first merge PostgreSQL / SQLite = {ratio:.2f} ({verdict} 1.5)")


def daemons(counts: list[int], people: int) -> None:
    from test_pg_daemons import Cluster, synced

    print(f"30 syncs of {people} contacts each (4 write batches/s per sync), one PostgreSQL")
    print(f"{'daemons':>8} {'all synced after':>17} {'syncs/minute':>13}")
    for n in counts:
        with tempfile.TemporaryDirectory(prefix="syncd-bench-pg-") as tmp:
            cluster = Cluster(Path(tmp), pg_support.new_database())
            cluster.setup()
            names = [f"s{i:02d}" for i in range(30)]
            for name in names:
                cluster.sync(name, people, rate=4.0)
            try:
                started = time.monotonic()
                for _ in range(n):
                    cluster.start()
                while not all(synced(cluster, name) for name in names):
                    time.sleep(0.1)
                took = time.monotonic() - started
            finally:
                cluster.close()
        print(f"{n:>8} {took:>16.1f}s {30 / took * 60:>13.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--daemons", default="1,2,3")
    parser.add_argument("--people", type=int, default=40)
    parser.add_argument("--skip-engine", action="store_true")
    parser.add_argument("--skip-daemons", action="store_true")
    args = parser.parse_args()
    if not args.skip_engine:
        engine([int(s) for s in args.sizes.split(",")], args.repeats)
    if not args.skip_daemons:
        daemons([int(n) for n in args.daemons.split(",")], args.people)


if __name__ == "__main__":
    main()
