"""PostgreSQL beside SQLite (issue 17). Starts its own PostgreSQL (the ``pgserver`` wheel).

1. The engine benchmark (``bench/engine.py``'s phases) on each store, each size in a fresh
   process, and the ratio PostgreSQL / SQLite. Target: the first merge at 100,000 a side on
   PostgreSQL ≤ 1.5 x SQLite's time.
   The stores alternate (SQLite, PostgreSQL, then PostgreSQL, SQLite, …) so that neither
   always runs on a warmer or quieter machine; the ratio is of the medians.
2. ``bench/daemons.py``: 30 CSV syncs over 1, 2 and 3 daemons sharing the database, each
   daemon running at most ``--cap`` of them at once (``[daemon] max_concurrent_runs``).

    .venv/bin/python bench/pg.py                      # 10,000 and 100,000; daemons 1, 2, 3
    .venv/bin/python bench/pg.py --sizes 10000 --skip-daemons
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import pg_support  # noqa: E402  (tests/ on the path: the suite's own PostgreSQL helper)


def engine(sizes: list[int], repeats: int) -> None:
    print(f"engine benchmark on both stores, alternating, medians of {repeats} runs (seconds)")
    print(f"{'contacts/side':>14} {'store':>10} {'merge':>7} {'no-change':>10} {'1% run':>7}")
    for size in sizes:
        runs: dict[str, list[dict[str, float]]] = {"sqlite": [], "postgresql": []}
        loads = []
        for repeat in range(repeats):
            # in turn, the order alternating: neither store always runs on a warmer box
            order = ("sqlite", "postgresql") if repeat % 2 == 0 else ("postgresql", "sqlite")
            for kind in order:
                command = [sys.executable, str(ROOT / "bench" / "engine.py"), "--one", str(size)]
                if kind == "postgresql":
                    command += ["--pg-url", pg_support.new_database()]
                loads.append(os.getloadavg()[0])
                out = subprocess.run(command, capture_output=True, text=True, check=True)
                runs[kind].append(json.loads(out.stdout.strip().splitlines()[-1]))
        figures = {
            kind: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
            for kind, rs in runs.items()
        }
        for kind, fig in figures.items():
            print(
                f"{size:>14,} {kind:>10} {fig['merge']:>7.2f} {fig['no_change']:>10.2f}"
                f" {fig['one_percent']:>7.2f}"
            )
        ratios = sorted(
            p["merge"] / s["merge"] for p, s in zip(runs["postgresql"], runs["sqlite"], strict=True)
        )
        ratio = figures["postgresql"]["merge"] / figures["sqlite"]["merge"]
        verdict = "≤" if ratio <= 1.5 else ">"
        print(
            f"{size:>14,} first merge PostgreSQL / SQLite = {ratio:.2f} ({verdict} 1.5); per"
            f" repeat {', '.join(f'{r:.2f}' for r in ratios)} (median"
            f" {statistics.median(ratios):.2f}); load average"
            f" {statistics.median(loads):.1f} on {os.cpu_count()} cores"
        )


def daemons(counts: list[int], repeats: int, cap: int) -> None:
    """bench/daemons.py's figure (30 syncs over 1, 2, 3 daemons): see its docstring."""
    command = [sys.executable, str(ROOT / "bench" / "daemons.py")]
    command += ["--daemons", ",".join(map(str, counts)), "--repeats", str(repeats)]
    command += ["--cap", str(cap)]
    subprocess.run(command, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--daemons", default="1,2,3")
    parser.add_argument(
        "--cap", type=int, default=10, help="bench/daemons.py's --cap (max_concurrent_runs)"
    )
    parser.add_argument("--skip-engine", action="store_true")
    parser.add_argument("--skip-daemons", action="store_true")
    args = parser.parse_args()
    if not args.skip_engine:
        engine([int(s) for s in args.sizes.split(",")], args.repeats)
    if not args.skip_daemons:
        daemons([int(n) for n in args.daemons.split(",")], args.repeats, args.cap)


if __name__ == "__main__":
    main()
