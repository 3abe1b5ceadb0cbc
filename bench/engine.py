"""Engine benchmark: two in-process apps of N contacts each, half sharing emails with differing
fields (``bench/synthetic.py``: generated records, revisions, incremental listing). Prints, for
each size (each in a fresh process, so the peaks are its own), the wall and CPU time of: the
initial merge; the first run after it (incremental: it lists again the records the merge wrote,
and finds them unchanged); a run with no changes (incremental, as scheduled runs are: the
cursor is past the merge's writes); a run after 1 % of each side was edited; a run with no
changes that lists both sides in full (what ``full_every`` does once a day). And the memory:
the peak RSS, the interpreter's (before the apps are built), the apps' (the same apps, with
what the sync wrote into them, loaded in a separate process with no sync) and syncd's own
share (peak less the other two).

    .venv/bin/python bench/engine.py                 # 10,000, 100,000 and 300,000, 3 repeats
    .venv/bin/python bench/engine.py --sizes 10000 --repeats 5
    .venv/bin/python bench/engine.py --one 100000 --profile no_change   # cProfile one phase

Targets on a 2-core machine at 100,000 (issue 19): merge ≤ 15 s, no-change run ≤ 0.3 s, 1 % run
≤ 0.5 s, syncd's own memory ≤ 150 MB; at 300,000, a no-change run ≤ 0.5 s, and the no-change
and 1 % runs growing with the changes, not the total. Figures are medians over the repeats.

The change journal (issue 15): every repeat runs each size twice, with the journal kept
(``history_days = 90``, the default: the figures above) and off (``history_days = 0``), in turn,
and prints the first merge with it on against off (target ≤ 1.3 x), the no-change runs (they
write nothing either way), and the database's growth per journaled field (the difference of the
two databases after the merge, checkpointed, over the fields the journal holds).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import pickle
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

TARGETS = {"merge": 15.0, "no_change": 0.3, "one_percent": 0.5, "syncd_rss_mb": 150.0}
TARGETS_300K = {"no_change": 0.5}


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


JOURNAL_SIZES = 100000
PHASES = ("merge", "after_merge", "no_change", "one_percent", "full_no_change")


def one_size(
    count: int, profile: str | None = None, history_days: int = 90, url: str | None = None
) -> dict[str, float]:
    """Run the phases at ``count`` in this process (see the module's docstring)."""
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
        figures: dict[str, float] = {"base_rss_mb": current_rss_mb()}
        populate(count)
        figures["start_rss_mb"] = current_rss_mb()
        # --pg-url: the same phases on PostgreSQL (bench/pg.py runs both stores side by side)
        store = Store(root / "state", StoreSettings(url=url) if url else None)
        store.open()

        def timed(name: str, full: bool = False) -> None:
            options = RunOptions(full=full)
            collected = GC_SECONDS[0]
            cpu = time.process_time()
            started = time.perf_counter()
            if profile == name:
                import cProfile

                with cProfile.Profile() as profiler:
                    result = asyncio.run(run_sync(sync, store, options))
                profiler.dump_stats(f"/tmp/engine-{name}.prof")
            else:
                result = asyncio.run(run_sync(sync, store, options))
            figures[name] = time.perf_counter() - started
            figures[f"{name}_cpu"] = time.process_time() - cpu
            figures[f"{name}_gc"] = GC_SECONDS[0] - collected
            assert result.outcome == "success", result.message
            figures[f"{name}_read"] = result.counts["read_a"] + result.counts["read_b"]
            figures[f"{name}_writes"] = sum(
                result.counts[k] for k in result.counts if k.startswith(("created", "updated"))
            )
            # the peak so far: which phase reached the run's peak
            figures[f"{name}_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            if name == "merge":
                # on the store's own thread and connection, as everything a daemon asks the
                # store is: a query from this thread would open a second connection, and its
                # checkpoint make the next run rebuild its link index (no daemon run does)
                figures.update(asyncio.run(store.run(database_figures, store)))

        timed("merge")
        timed("after_merge")
        timed("no_change")
        figures["edited"] = edit_one_percent()
        timed("one_percent")
        timed("full_no_change", full=True)
        store.close()
        figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        figures["apps_rss_mb"] = apps_rss_mb(root / "apps.pickle")
    others = figures["base_rss_mb"] + figures["apps_rss_mb"]
    figures["syncd_rss_mb"] = figures["peak_rss_mb"] - others
    return figures


#: seconds the cyclic garbage collector ran, in total (the engine pauses it during a run; what
#: the run leaves to it is collected once it runs again)
GC_SECONDS = [0.0]
_gc_started = [0.0]


def _gc_timer(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _gc_started[0] = time.perf_counter()
    else:
        GC_SECONDS[0] += time.perf_counter() - _gc_started[0]


gc.callbacks.append(_gc_timer)


def apps_rss_mb(path: Path) -> float:
    """The apps' own memory as they are now (with what the sync wrote into them): loaded in a
    fresh process that imports what this one does and runs no sync, its RSS less what it had
    before loading them."""
    with path.open("wb") as out:
        pickle.dump(synthetic.APPS, out, protocol=pickle.HIGHEST_PROTOCOL)
    synthetic.APPS.clear()
    out = subprocess.run(
        [sys.executable, __file__, "--apps-rss", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def measure_apps(path: str) -> float:
    import syncd.engine.executor  # noqa: F401  (what the benchmark's process has imported)
    from syncd.store import Store  # noqa: F401

    before = current_rss_mb()
    with open(path, "rb") as source:
        apps = pickle.load(source)
    after = current_rss_mb()
    del apps
    os.unlink(path)
    return after - before


def database_figures(store: object) -> dict[str, float]:
    """The database's size after the merge (the WAL checkpointed into it), how many fields
    the journal holds (each value sent, per write), and the process's CPU seconds so far (both
    threads; start-up and the apps' records included, the same with the journal on or off):
    on a machine shared with other work, CPU time says what wall time cannot."""
    cpu = time.process_time()
    db = store.db  # type: ignore[attr-defined]
    fields = sum(len(json.loads(sent)) for (sent,) in db.execute_sql("SELECT sent FROM journal"))
    if store.shared:  # type: ignore[attr-defined]  # PostgreSQL (--pg-url)
        (size,) = db.execute_sql("SELECT pg_database_size(current_database())").fetchone()
        return {"db_bytes": float(size), "journal_fields": float(fields), "cpu": cpu}
    db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    path = Path(store.path)  # type: ignore[attr-defined]
    return {"db_bytes": float(path.stat().st_size), "journal_fields": float(fields), "cpu": cpu}


def current_rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,300000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--pg-url", help=argparse.SUPPRESS)
    parser.add_argument("--apps-rss", help=argparse.SUPPRESS)
    parser.add_argument("--history-days", type=int, default=90, help=argparse.SUPPRESS)
    parser.add_argument(
        "--profile", choices=PHASES, help="with --one: write /tmp/engine-PHASE.prof (cProfile)"
    )
    args = parser.parse_args()
    if args.apps_rss:
        print(measure_apps(args.apps_rss))
        return
    if args.one:
        print(json.dumps(one_size(args.one, args.profile, args.history_days, args.pg_url)))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[int, dict[str, float]] = {}
    journal_off: dict[int, dict[str, float]] = {}
    for size in sizes:
        runs: dict[int, list[dict[str, float]]] = {90: [], 0: []}
        for repeat in range(args.repeats):
            # on and off in turn, the order alternating: neither always runs on a warmer box;
            # the journal's cost is compared up to 100,000 (a 300,000 merge takes minutes)
            order = (90, 0) if repeat % 2 == 0 else (0, 90)
            for days in order if size <= JOURNAL_SIZES else (90,):
                out = subprocess.run(
                    [sys.executable, __file__, "--one", str(size), "--history-days", str(days)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                runs[days].append(json.loads(out.stdout.strip().splitlines()[-1]))
        results[size] = {key: statistics.median(r[key] for r in runs[90]) for key in runs[90][0]}
        if runs[0]:
            journal_off[size] = {
                key: statistics.median(r[key] for r in runs[0]) for key in runs[0][0]
            }
    print(f"engine benchmark, medians of {args.repeats} runs; {load()}")
    print("wall seconds (CPU seconds of the process, all threads, in brackets):")
    print(f"{'contacts/side':>14} " + " ".join(f"{LABELS[p]:>16}" for p in PHASES))
    for size, fig in results.items():
        cells = " ".join(f"{fig[p]:>7.2f} ({fig[p + '_cpu']:>6.2f})" for p in PHASES)
        print(f"{size:>14,} {cells}")
    print("of which the cyclic garbage collector (wall seconds):")
    for size, fig in results.items():
        print(f"{size:>14,} " + ", ".join(f"{LABELS[p]} {fig[p + '_gc']:.2f}" for p in PHASES))
    print("memory (MB): peak RSS = interpreter + apps (loaded alone, no sync) + syncd's own")
    for size, fig in results.items():
        print(
            f"{size:>14,} peak {fig['peak_rss_mb']:.0f} = interpreter {fig['base_rss_mb']:.0f}"
            f" + apps {fig['apps_rss_mb']:.0f} + syncd {fig['syncd_rss_mb']:.0f}"
        )
    print("peak RSS (MB) after each phase (the first to reach the peak is where it is):")
    for size, fig in results.items():
        peaks = ", ".join(f"{LABELS[p]} {fig[p + '_rss_mb']:.0f}" for p in PHASES)
        print(f"{size:>14,} {peaks}")
    print("records read / written per run (medians):")
    for size, fig in results.items():
        counts = ", ".join(
            f"{phase} {fig[phase + '_read']:,.0f}/{fig[phase + '_writes']:,.0f}" for phase in PHASES
        )
        print(f"{size:>14,} {counts}")
    for small_size, large_size in itertools.pairwise(sizes):
        small, large = results[small_size], results[large_size]
        growth = ", ".join(
            f"{key} x{large[key] / small[key]:.1f}" for key in (*PHASES, "syncd_rss_mb")
        )
        print(f"growth {small_size:,} -> {large_size:,} (x{large_size / small_size:.0f}): {growth}")
    print("the change journal: history_days = 90 (on) against 0 (off), medians:")
    for size in sizes:
        if size not in journal_off:
            continue
        on, off = results[size], journal_off[size]
        growth = on["db_bytes"] - off["db_bytes"]
        per_field = growth / on["journal_fields"] if on["journal_fields"] else 0.0
        print(
            f"{size:>14,} merge on {on['merge']:.2f} s / off {off['merge']:.2f} s = "
            f"x{on['merge'] / off['merge']:.2f} (target ≤ x1.3; CPU to the merge's end "
            f"{on['cpu']:.1f} / {off['cpu']:.1f} s = x{on['cpu'] / off['cpu']:.2f}); no-change on "
            f"{on['no_change']:.2f} s / off {off['no_change']:.2f} s, writes "
            f"{on['no_change_writes']:.0f}/{off['no_change_writes']:.0f}; database +"
            f"{growth / 2**20:.1f} MB for {on['journal_fields']:,.0f} journaled fields = "
            f"{per_field:.0f} bytes per field"
        )
    for size, targets in ((100000, TARGETS), (300000, TARGETS_300K)):
        if size in results:
            fig = results[size]
            verdicts = [
                f"{key} {fig[key]:.2f} {'≤' if fig[key] <= limit else '>'} {limit}"
                for key, limit in targets.items()
            ]
            print(f"targets at {size:,}: " + "; ".join(verdicts))


LABELS = {
    "merge": "merge",
    "after_merge": "after merge",
    "no_change": "no-change",
    "one_percent": "1% run",
    "full_no_change": "full no-change",
}


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f}, {five:.1f}, {fifteen:.1f} on {os.cpu_count()} CPUs"


if __name__ == "__main__":
    main()
