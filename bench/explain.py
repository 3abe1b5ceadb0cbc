"""What "why did this contact not sync?" costs: the engine recording the records a rule filters
out, and explaining one contact, at N contacts a side (the engine benchmark's apps,
``bench/engine.py``).

The sync has one rule on a-to-b, ``IF tags contains customer``, which a third of side a's
records match: the first merge leaves about two thirds of a's own records behind, and records
why (one ``record_decision`` row each). Printed, medians over the repeats (each in a fresh
process): the merge, a run with no changes (incremental), a run that lists both sides in full
(it decides the filtered records again), and then the time to explain one contact by email, by
record id, and to build the health view.

    .venv/bin/python bench/explain.py                       # 100,000, 3 repeats
    .venv/bin/python bench/explain.py --size 10000 --repeats 5

Run with the tree of another commit first on PYTHONPATH (``PYTHONPATH=/tmp/old:/tmp/old/bench``)
to time the same runs without the recording (the explain figures are then left out).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import engine
import synthetic

RULE = """
[[rules.a-to-b]]
if = [ { field = "tags", op = "contains", value = "customer" } ]
"""
PHASES = ("merge", "no_change", "full_no_change")


def one_size(count: int) -> dict[str, float]:
    from syncd.config import load_sync
    from syncd.engine.executor import RunOptions, run_sync
    from syncd.logs import configure
    from syncd.plugins import load_plugins
    from syncd.store import Store

    configure("json", "warning")
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "config" / "syncs").mkdir(parents=True)
        path = root / "config" / "syncs" / "bench.toml"
        path.write_text(
            '[a]\nconnector = "synthetic"\naccount = "bench-a"\n'
            '[b]\nconnector = "synthetic"\naccount = "bench-b"\n' + RULE
        )
        sync = load_sync(path, load_plugins(extra=[synthetic]))
        engine.populate(count)
        store = Store(root / "state")
        store.open()
        for name in PHASES:
            started = time.perf_counter()
            result = asyncio.run(run_sync(sync, store, RunOptions(full=name == "full_no_change")))
            figures[name] = time.perf_counter() - started
            assert result.outcome == "success", result.message
        if not hasattr(store, "count_decisions"):  # a tree from before syncd explain
            store.close()
            return figures
        from syncd.explain import explain
        from syncd.health import health_on_store

        figures["decisions"] = float(store.count_decisions("bench").get("filtered", 0))
        for name, query in (
            ("explain_email", f"person{count // 2 + 2}@example.com"),
            ("explain_id", f"b{count // 2 + 3}"),
        ):
            started = time.perf_counter()
            answer = explain(store, sync, query)
            figures[name] = time.perf_counter() - started
            assert answer["found"], answer
        started = time.perf_counter()
        health = health_on_store(store, "bench")
        figures["health"] = time.perf_counter() - started
        assert health["counts"]["filtered"] == figures["decisions"]
        store.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_size(args.one)))
        return
    runs = []
    for _ in range(args.repeats):
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(args.size)],
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    fig = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    print(f"explain benchmark at {args.size:,} contacts a side, medians of {args.repeats} runs")
    print(
        f"runs with a filter rule (s): merge {fig['merge']:.2f}, no-change {fig['no_change']:.2f}, "
        f"full no-change {fig['full_no_change']:.2f}"
    )
    if "explain_email" in fig:
        print(
            f"filtered out and recorded: {fig['decisions']:,.0f}; explain by email "
            f"{fig['explain_email'] * 1000:.0f} ms, by id {fig['explain_id'] * 1000:.0f} ms; "
            f"health view {fig['health'] * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
