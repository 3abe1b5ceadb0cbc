"""What a rate budget shared through PostgreSQL costs per call (issue 17).

Every call a connector makes on a PostgreSQL store takes its account's budget row (one short
transaction) and gives it back after the answer (another). This prints the time per call of
that, beside the in-process budget SQLite installations use, with limits so high that nothing
waits: the overhead alone. Variants alternate, medians of the repeats. Starts its own PostgreSQL
(the ``pgserver`` wheel, on a unix socket: a network adds its round trips).

    .venv/bin/python bench/pg_budget.py [--calls 2000] [--repeats 5] [--tasks 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import pg_support  # noqa: E402  (tests/ on the path: the suite's own PostgreSQL helper)

from syncd.http import RateBudget  # noqa: E402
from syncd.store import Store, StoreSettings  # noqa: E402


async def through(budget: RateBudget, calls: int, tasks: int) -> float:
    """Seconds per call for ``calls`` calls made by ``tasks`` tasks at once."""
    per_task = calls // tasks

    async def worker() -> None:
        for _ in range(per_task):
            async with budget:
                pass

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return (time.perf_counter() - started) / (per_task * tasks)


async def main(calls: int, repeats: int, tasks: int) -> None:
    store = Store(Path(tempfile.mkdtemp()), StoreSettings(url=pg_support.new_database()))
    await store.aopen()
    assert store.budgets is not None
    local_times, shared_times = [], []
    for _ in range(repeats):
        # a short window: a call leaves it a moment after its answer, as few stay in it as in
        # a minute of Xero's (60 at most)
        local = RateBudget(10**9, 0.05, tasks)
        local_times.append(await through(local, calls, tasks))
        shared = RateBudget(10**9, 0.05, tasks)
        shared.gate = store.budgets.gate("bench:account", 10**9, 0.05, tasks)
        shared_times.append(await through(shared, calls, tasks))
        await shared.gate.close()
    await store.aclose()
    load = os.getloadavg()
    print(f"{calls} calls by {tasks} tasks, medians of {repeats} (load {load[0]:.2f})")
    print(f"  in-process budget:     {statistics.median(local_times) * 1e3:8.3f} ms a call")
    print(f"  shared via PostgreSQL: {statistics.median(shared_times) * 1e3:8.3f} ms a call")
    print("  (Xero allows one call a second per organisation: the shared budget's cost is")
    print("   paid against a thousand times as much time)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.repeats, args.tasks))
