"""Engine benchmark: two in-process apps of N contacts each, half sharing emails with differing
fields. Prints the time of the initial merge, of a run with no changes and of a run with 1 %
changed, and the peak RSS, for each size (each size in a fresh process, so the peaks are its own).

    .venv/bin/python bench/engine.py                 # 10,000 and 100,000, 3 repeats each
    .venv/bin/python bench/engine.py --sizes 10000 --repeats 5

Targets on a 2-core machine at 100,000: merge ≤ 30 s with peak RSS ≤ 500 MB; no-change run ≤ 1 s;
1 % run ≤ 3 s. Figures are medians over the repeats.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"merge": 30.0, "no_change": 1.0, "one_percent": 3.0, "peak_rss_mb": 500.0}


def populate(count: int, seed: int = 1) -> None:
    from syncd.testing import memory

    rng = random.Random(seed)
    a, b = memory.app("bench-a"), memory.app("bench-b")
    cities = ["Leeds", "York", "Hull", "Bath", "Derby", "Ely"]
    titles = ["CEO", "CTO", "Buyer", "Engineer", "Manager", None]
    for i in range(count):
        a.add(
            {
                "email": f"person{i}@example.com",
                "first_name": f"First{i}",
                "last_name": f"Last{i}",
                "company": f"Company {i % 977}",
                "city": rng.choice(cities),
                "phone": f"+44207946{i % 100000:05d}",
                "title": rng.choice(titles),
                "tags": ("customer",) if i % 3 == 0 else None,
            }
        )
        # half of b shares emails with a (with differing fields), half is b's own
        email = f"person{i}@example.com" if i % 2 == 0 else f"other{i}@example.org"
        b.add(
            {
                "email": email,
                "first_name": f"First{i}",
                "last_name": f"Surname{i}" if i % 4 == 0 else f"Last{i}",
                "company": f"Company {i % 977}",
                "city": rng.choice(cities),
                "mobile": f"+447700{i % 1000000:06d}",
                "title": None,
                "tags": ("lead",) if i % 5 == 0 else None,
            }
        )


def edit_one_percent(count: int, seed: int = 2) -> None:
    from syncd.testing import memory

    rng = random.Random(seed)
    for side in ("bench-a", "bench-b"):
        app = memory.app(side)
        ids = list(app.records)
        for rid in rng.sample(ids, max(1, len(ids) // 200)):
            app.edit(rid, city=f"Edited {rng.randrange(10**6)}")


def one_size(count: int) -> dict[str, float]:
    """Run the three phases at ``count`` in this process."""
    from syncd.config import load_sync
    from syncd.engine.executor import RunOptions, run_sync
    from syncd.logs import configure
    from syncd.plugins import load_plugins
    from syncd.store import Store
    from syncd.testing import memory

    configure("json", "warning")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "config" / "syncs").mkdir(parents=True)
        path = root / "config" / "syncs" / "bench.toml"
        path.write_text(
            '[a]\nconnector = "memory"\naccount = "bench-a"\nbatch_size = 1000\n'
            '[b]\nconnector = "memory"\naccount = "bench-b"\nbatch_size = 1000\n'
        )
        sync = load_sync(path, load_plugins(extra=[memory]))
        populate(count)
        apps_rss = current_rss_mb()
        store = Store(root / "state")
        store.open()
        figures: dict[str, float] = {}

        def timed(name: str) -> None:
            started = time.perf_counter()
            result = asyncio.run(run_sync(sync, store, RunOptions()))
            figures[name] = time.perf_counter() - started
            assert result.outcome == "success", result.message
            figures[f"{name}_writes"] = sum(
                result.counts[k] for k in result.counts if k.startswith(("created", "updated"))
            )

        timed("merge")
        timed("no_change")
        edit_one_percent(count)
        timed("one_percent")
        store.close()
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # the in-process apps hold 150,000 contacts each by the end: what syncd itself adds is the
    # peak less the process with the apps filled in (an estimate: the apps grow as syncd writes)
    figures["apps_rss_mb"] = apps_rss
    return figures


def current_rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_size(args.one)))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[int, dict[str, float]] = {}
    for size in sizes:
        runs = []
        for _ in range(args.repeats):
            out = subprocess.run(
                [sys.executable, __file__, "--one", str(size)],
                capture_output=True,
                text=True,
                check=True,
            )
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        results[size] = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    print(f"engine benchmark, medians of {args.repeats} runs (seconds; RSS in MB)")
    print(
        f"{'contacts/side':>14} {'merge':>8} {'no-change':>10} {'1% run':>8} {'peak RSS':>9}"
        f" {'apps RSS':>9} {'writes: merge/no-change/1%':>28}"
    )
    for size, fig in results.items():
        writes = "/".join(
            f"{fig[key]:.0f}" for key in ("merge_writes", "no_change_writes", "one_percent_writes")
        )
        print(
            f"{size:>14,} {fig['merge']:>8.2f} {fig['no_change']:>10.2f} "
            f"{fig['one_percent']:>8.2f} {fig['peak_rss_mb']:>9.0f} {fig['apps_rss_mb']:>9.0f}"
            f" {writes:>28}"
        )
    if len(sizes) > 1:
        small, large = results[sizes[0]], results[sizes[-1]]
        factor = sizes[-1] / sizes[0]
        growth = ", ".join(
            f"{key} x{large[key] / small[key]:.1f}"
            for key in ("merge", "no_change", "one_percent", "peak_rss_mb")
        )
        print(f"growth for x{factor:.0f} contacts: {growth}")
    largest = results[sizes[-1]]
    if sizes[-1] >= 100000:
        verdicts = [
            f"{key} {largest[key]:.2f} {'≤' if largest[key] <= limit else '>'} {limit}"
            for key, limit in TARGETS.items()
        ]
        print("targets at 100,000: " + "; ".join(verdicts))


if __name__ == "__main__":
    main()
