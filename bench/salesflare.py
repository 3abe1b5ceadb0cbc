"""Benchmark: the initial merge of a CSV file and a Salesflare account, against the emulator.

    .venv/bin/python bench/salesflare.py [--count 5000] [--limited-count 400] [--skip-limited]

1. **Rate limits off**: ``--count`` contacts on each side, half of them the same people (same
   email and names), merged by a real ``syncd sync`` process. Reports the API calls the emulator
   received against the lower bound:

   * the pages needed to list Salesflare: ``GET /contacts`` answers a bare array with no total,
     so a listing ends on a short page: ``count // page_size + 1`` pages;
   * the creates divided by the largest ``POST /contacts`` array the emulator takes (100;
     Salesflare documents no maximum);
   * the updates, one call each (Salesflare has no bulk update); none in this data set;
   * the CSV side is a file: no calls.

   The run must stay within 2 calls of the bound (exit status 1 otherwise).
2. **Rate limits on** (the emulator's 300 requests in any 60 seconds; Salesflare publishes no
   limit, see the plugin README): ``--limited-count`` contacts on each side, all the same people
   but with a different last name in the CSV, so that every one costs a ``PUT``. The connector
   is set to 150 calls a minute: its budget lets a minute's worth go at once, so half the limit
   never trips a sliding window. Reports the wall time against the time the limit itself imposes
   (calls beyond the first 300 wait for the window to slide) and against the connector's budget.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

import harness
from syncd_salesflare.sandbox import STATE, make_app

from syncd.sandbox import CALLS_KEY, SandboxServer

SLACK = 2
PAGE_SIZE = 500
MAX_BATCH = 100


def seed_salesflare(app: Any, count: int, shared: int) -> None:
    """``shared`` people also in the CSV (same values), then Salesflare-only people."""
    state = app[STATE]
    index: dict[str, int] = {}
    for n in range(count):
        email = f"person{n}@example.com" if n < shared else f"sf-only{n}@example.com"
        values = state.validate_contact(
            {"firstname": f"Person{n}", "lastname": "Bench", "email": email}, [], creating=True
        )
        state.create_contact(values, force=True, index=index)


def write_csv(path: Path, count: int, shared: int, last_name: str = "Bench") -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["email", "first_name", "last_name"])
        for n in range(count):
            email = f"person{n}@example.com" if n < shared else f"csv-only{n}@example.com"
            writer.writerow([email, f"Person{n}", last_name])


def write_sync(config: Path, contacts: Path, url: str, extra: str) -> None:
    (config / "syncs").mkdir(parents=True, exist_ok=True)
    (config / "syncs" / "bench.toml").write_text(
        f"""
direction = "two-way"
initial = "merge"
winner = "a"
[a]
connector = "csv"
path = {json.dumps(str(contacts))}
batch_size = 5000
[b]
connector = "salesflare"
api_key = "sandbox-api-key"
base_url = "{url}"
page_size = {PAGE_SIZE}
create_batch_size = {MAX_BATCH}
{extra}
""",
        encoding="utf-8",
    )


async def run_sync(root: Path) -> tuple[float, dict[str, Any]]:
    return await harness.run_sync(root, "syncd-salesflare")


async def unlimited(count: int) -> dict[str, Any]:
    shared = count // 2
    app = make_app(None, {"rate_limit": 0, "max_batch": MAX_BATCH})
    seed_salesflare(app, count, shared)
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        write_csv(root / "contacts.csv", count, shared)
        async with SandboxServer(app) as server:
            write_sync(
                root / "config",
                root / "contacts.csv",
                server.url,
                "calls_per_minute = 1000000\nconcurrency = 4",
            )
            elapsed, result = await run_sync(root)
    calls = dict(app[CALLS_KEY])
    total = sum(calls.values())  # every request the emulator answered
    creates_b = result["counts"]["created_b"]
    updates_b = result["counts"]["updated_b"]
    pages = count // PAGE_SIZE + 1
    bound = pages + 0 + math.ceil(creates_b / MAX_BATCH) + updates_b
    return {
        "contacts_each_side": count,
        "created_in_salesflare": creates_b,
        "created_in_csv": result["counts"]["created_a"],
        "linked": result["counts"]["linked"],
        "stored_in_salesflare": len(app[STATE].contacts),
        "calls": total,
        "calls_by_route": calls,
        "lower_bound": bound,
        "within_slack": total - bound <= SLACK,
        "seconds": round(elapsed, 2),
        "outcome": result["outcome"],
    }


async def limited(count: int) -> dict[str, Any]:
    app = make_app(None, {"max_batch": MAX_BATCH})  # the emulator's default: 300 in any 60 s
    limit, window = 300, 60.0
    seed_salesflare(app, count, count)
    rate = 150
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        write_csv(root / "contacts.csv", count, count, last_name="Changed")
        async with SandboxServer(app) as server:
            write_sync(
                root / "config",
                root / "contacts.csv",
                server.url,
                f"calls_per_minute = {rate}\nconcurrency = 2",
            )
            elapsed, result = await run_sync(root)
    calls = sum(app[CALLS_KEY].values())
    refused = sum(1 for c in app[STATE].contacts.values() if c["lastname"] != "Changed")
    # requests beyond the first `limit` wait for the window to slide: one window per `limit`
    imposed = max(0, math.ceil(calls / limit) - 1) * window
    # the connector's budget: a minute's worth at once, then `rate` a minute
    budget = max(0.0, (calls - rate) / (rate / 60))
    return {
        "contacts_each_side": count,
        "updated_in_salesflare": result["counts"]["updated_b"],
        "not_updated": refused,
        "calls": calls,
        "limit": f"{limit} per {window:g}s",
        "seconds": round(elapsed, 1),
        "imposed_by_limit_seconds": round(imposed, 1),
        "imposed_by_connector_budget_seconds": round(budget, 1),
        "outcome": result["outcome"],
    }


async def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--limited-count", type=int, default=400)
    parser.add_argument("--skip-limited", action="store_true")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()

    report: dict[str, Any] = {"unlimited": await unlimited(options.count)}
    if not options.skip_limited:
        report["limited"] = await limited(options.limited_count)
    if options.json:
        print(json.dumps(report, indent=2))
    else:
        u = report["unlimited"]
        print(
            f"rate limits off: {u['contacts_each_side']} contacts a side, {u['linked']} linked, "
            f"{u['created_in_salesflare']} created in Salesflare, {u['created_in_csv']} in the "
            f"CSV; {u['calls']} API calls vs lower bound {u['lower_bound']} "
            f"({'ok' if u['within_slack'] else 'OVER'}, slack {SLACK}), {u['seconds']}s"
        )
        if "limited" in report:
            lim = report["limited"]
            print(
                f"rate limits on ({lim['limit']}): {lim['updated_in_salesflare']} updates, "
                f"{lim['calls']} calls in {lim['seconds']}s; the limit imposes "
                f"{lim['imposed_by_limit_seconds']}s, the connector's budget "
                f"{lim['imposed_by_connector_budget_seconds']}s; outcome {lim['outcome']}"
            )
    return 0 if report["unlimited"]["within_slack"] else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
