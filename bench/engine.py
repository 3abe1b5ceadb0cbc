"""Engine benchmark: two in-process apps of N contacts each, half sharing emails with differing
fields (``bench/synthetic.py``: generated records, revisions, incremental listing). Prints the
time of the initial merge, of a run with no changes, of a run with 1 % of each side changed and
of a run with no changes that lists both sides in full, and the peak RSS, for each size (each
size in a fresh process, so the peaks are its own).

    .venv/bin/python bench/engine.py                 # 10,000 and 100,000, 3 repeats each
    .venv/bin/python bench/engine.py --sizes 10000 --repeats 5
    .venv/bin/python bench/engine.py --one 100000 --profile no_change   # cProfile one phase

Targets on a 2-core machine at 100,000: merge ≤ 30 s with peak RSS ≤ 500 MB; no-change run ≤ 1 s;
1 % run ≤ 3 s. Figures are medians over the repeats.

The change journal (issue 15): every repeat runs each size twice, with the journal kept
(``history_days = 90``, the default: the figures above) and off (``history_days = 0``), in turn,
and prints the first merge with it on against off (target ≤ 1.3 x), the no-change runs (they
write nothing either way), and the database's growth per journaled field (the difference of the
two databases after the merge, checkpointed, over the fields the journal holds).
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

import synthetic

from syncd.connector import RawValue

TARGETS = {"merge": 30.0, "no_change": 1.0, "one_percent": 3.0, "merge_rss_mb": 500.0}


CITIES = ("Leeds", "York", "Hull", "Bath", "Derby", "Ely")
TITLES = ("CEO", "CTO", "Buyer", "Engineer", "Manager", None)


def record_a(i: int) -> tuple[RawValue, ...]:
    return (
        f"person{i}@example.com",
        f"First{i}",
        f"Last{i}",
        f"Company {i % 977}",
        CITIES[i * 7919 % 6],
        f"+44207946{i % 100000:05d}",
        None,
        TITLES[i * 104729 % 6],
        ("customer",) if i % 3 == 0 else None,
    )


def record_b(i: int) -> tuple[RawValue, ...]:
    # half of b shares emails with a (with differing fields), half is b's own
    return (
        f"person{i}@example.com" if i % 2 == 0 else f"other{i}@example.org",
        f"First{i}",
        f"Surname{i}" if i % 4 == 0 else f"Last{i}",
        f"Company {i % 977}",
        CITIES[i * 6151 % 6],
        None,
        f"+447700{i % 1000000:06d}",
        None,
        ("lead",) if i % 5 == 0 else None,
    )


def populate(count: int) -> None:
    synthetic.APPS["bench-a"] = synthetic.SyntheticApp("a", count, record_a)
    synthetic.APPS["bench-b"] = synthetic.SyntheticApp("b", count, record_b)


def edit_one_percent(seed: int = 2) -> int:
    """Edit 1 % of each side's records (a new city); returns how many were edited."""
    rng = random.Random(seed)
    edited = 0
    for account in ("bench-a", "bench-b"):
        app = synthetic.APPS[account]
        ids = app.ids()
        for rid in rng.sample(ids, max(1, len(ids) // 100)):
            app.edit(rid, city=f"Edited {rng.randrange(10**6)}")
            edited += 1
    return edited


PHASES = ("merge", "no_change", "one_percent", "full_no_change")


def one_size(
    count: int, profile: str | None = None, history_days: int = 90, url: str | None = None
) -> dict[str, float]:
    """Run the phases at ``count`` in this process: the initial merge; a run with no changes
    (incremental, as scheduled runs are: it lists again what the merge wrote, and finds it
    unchanged); a run after 1 % of each side was edited; a run with no changes listing both
    sides in full (what ``full_every`` does once a day)."""
    from syncd.config import load_sync
    from syncd.engine.executor import RunOptions, run_sync
    from syncd.logs import configure
    from syncd.plugins import load_plugins
    from syncd.store import Store, StoreSettings

    configure("json", "warning")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "config" / "syncs").mkdir(parents=True)
        path = root / "config" / "syncs" / "bench.toml"
        path.write_text(
            f"history_days = {history_days}\n"
            '[a]\nconnector = "synthetic"\naccount = "bench-a"\n'
            '[b]\nconnector = "synthetic"\naccount = "bench-b"\n'
        )
        sync = load_sync(path, load_plugins(extra=[synthetic]))
        populate(count)
        figures: dict[str, float] = {"start_rss_mb": current_rss_mb()}
        # --pg-url: the same phases on PostgreSQL (bench/pg.py runs both stores side by side)
        store = Store(root / "state", StoreSettings(url=url) if url else None)
        store.open()

        def timed(name: str, full: bool = False) -> None:
            options = RunOptions(full=full)
            started = time.perf_counter()
            if profile == name:
                import cProfile

                with cProfile.Profile() as profiler:
                    result = asyncio.run(run_sync(sync, store, options))
                profiler.dump_stats(f"/tmp/engine-{name}.prof")
            else:
                result = asyncio.run(run_sync(sync, store, options))
            figures[name] = time.perf_counter() - started
            assert result.outcome == "success", result.message
            figures[f"{name}_read"] = result.counts["read_a"] + result.counts["read_b"]
            figures[f"{name}_writes"] = sum(
                result.counts[k] for k in result.counts if k.startswith(("created", "updated"))
            )
            if name == "merge":
                figures["merge_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                figures.update(database_figures(store))

        timed("merge")
        timed("no_change")
        figures["edited"] = edit_one_percent()
        timed("one_percent")
        timed("full_no_change", full=True)
        store.close()
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return figures


def database_figures(store: object) -> dict[str, float]:
    """The database's size after the merge (the WAL checkpointed into it) and how many fields
    the journal holds (each value sent, per write)."""
    db = store.db  # type: ignore[attr-defined]
    fields = sum(len(json.loads(sent)) for (sent,) in db.execute_sql("SELECT sent FROM journal"))
    if store.shared:  # type: ignore[attr-defined]  # PostgreSQL (--pg-url)
        (size,) = db.execute_sql("SELECT pg_database_size(current_database())").fetchone()
        return {"db_bytes": float(size), "journal_fields": float(fields)}
    db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    path = Path(store.path)  # type: ignore[attr-defined]
    return {"db_bytes": float(path.stat().st_size), "journal_fields": float(fields)}


def current_rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--pg-url", help=argparse.SUPPRESS)
    parser.add_argument("--history-days", type=int, default=90, help=argparse.SUPPRESS)
    parser.add_argument(
        "--profile", choices=PHASES, help="with --one: write /tmp/engine-PHASE.prof (cProfile)"
    )
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_size(args.one, args.profile, args.history_days, args.pg_url)))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[int, dict[str, float]] = {}
    journal_off: dict[int, dict[str, float]] = {}
    for size in sizes:
        runs: dict[int, list[dict[str, float]]] = {90: [], 0: []}
        for repeat in range(args.repeats):
            # on and off in turn, the order alternating: neither always runs on a warmer box
            for days in (90, 0) if repeat % 2 == 0 else (0, 90):
                out = subprocess.run(
                    [sys.executable, __file__, "--one", str(size), "--history-days", str(days)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                runs[days].append(json.loads(out.stdout.strip().splitlines()[-1]))
        results[size] = {key: statistics.median(r[key] for r in runs[90]) for key in runs[90][0]}
        journal_off[size] = {key: statistics.median(r[key] for r in runs[0]) for key in runs[0][0]}
    print(f"engine benchmark, medians of {args.repeats} runs (seconds; RSS in MB)")
    print(
        f"{'contacts/side':>14} {'merge':>7} {'no-change':>10} {'1% run':>7} {'full no-change':>15}"
        f" {'peak RSS':>9} {'at start':>9}"
    )
    for size, fig in results.items():
        print(
            f"{size:>14,} {fig['merge']:>7.2f} {fig['no_change']:>10.2f} "
            f"{fig['one_percent']:>7.2f} {fig['full_no_change']:>15.2f}"
            f" {fig['peak_rss_mb']:>9.0f} {fig['start_rss_mb']:>9.0f}"
        )
    print("records read / written per run (medians):")
    for size, fig in results.items():
        counts = ", ".join(
            f"{phase} {fig[phase + '_read']:,.0f}/{fig[phase + '_writes']:,.0f}" for phase in PHASES
        )
        print(f"{size:>14,} {counts}")
    if len(sizes) > 1:
        small, large = results[sizes[0]], results[sizes[-1]]
        factor = sizes[-1] / sizes[0]
        growth = ", ".join(
            f"{key} x{large[key] / small[key]:.1f}" for key in (*PHASES, "peak_rss_mb")
        )
        print(f"growth for x{factor:.0f} contacts: {growth}")
    print("the change journal: history_days = 90 (on) against 0 (off), medians:")
    for size in sizes:
        on, off = results[size], journal_off[size]
        growth = on["db_bytes"] - off["db_bytes"]
        per_field = growth / on["journal_fields"] if on["journal_fields"] else 0.0
        print(
            f"{size:>14,} merge on {on['merge']:.2f} s / off {off['merge']:.2f} s = "
            f"x{on['merge'] / off['merge']:.2f} (target ≤ x1.3); no-change on "
            f"{on['no_change']:.2f} s / off {off['no_change']:.2f} s, writes "
            f"{on['no_change_writes']:.0f}/{off['no_change_writes']:.0f}; database +"
            f"{growth / 2**20:.1f} MB for {on['journal_fields']:,.0f} journaled fields = "
            f"{per_field:.0f} bytes per field"
        )
    largest = results[sizes[-1]]
    if sizes[-1] >= 100000:
        verdicts = [
            f"{key} {largest[key]:.2f} {'≤' if largest[key] <= limit else '>'} {limit}"
            for key, limit in TARGETS.items()
        ]
        print("targets at 100,000: " + "; ".join(verdicts))


if __name__ == "__main__":
    main()
