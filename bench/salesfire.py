"""Benchmark: the initial sync of a CSV file into a Salesfire list, against the emulator.

    .venv/bin/python bench/salesfire.py [--count 5000] [--limited-count 300] [--skip-limited]

1. **Rate limits off**: ``--count`` contacts pushed by a real ``syncd sync`` process. Reports the
   API calls the emulator received against the lower bound: Salesfire cannot be listed (0 pages),
   the CSV side is a file (0 calls), and Salesfire takes one customer per request, so the bound
   is one call per contact. The run must stay within 2 calls of it (exit status 1 otherwise).
2. **Rate limits on** (the emulator's 120 requests a minute per site, a fixed window; Salesfire
   publishes no limit, see the plugin README): ``--limited-count`` contacts with the connector's
   default settings. Reports the wall time against the time the limit itself imposes (each full
   window of 120 after the first costs a minute) and against the connector's own budget (100 a
   minute, spread evenly, kept below the limit on purpose because the real window is unknown).
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
from syncd_salesfire.sandbox import create_app, state

from syncd.sandbox import CALLS_KEY, SandboxServer

SECRET = "bench-secret"
SLACK = 2


def write_contacts(path: Path, count: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["email", "first_name", "last_name", "mobile", "tags"])
        for n in range(count):
            mobile = f"+4477009{n:05d}" if n % 3 == 0 else ""
            tags = "newsletter" if n % 2 == 0 else "customer"
            writer.writerow([f"person{n}@example.com", f"Person{n}", "Bench", mobile, tags])


def write_sync(config: Path, contacts: Path, url: str, extra: str) -> None:
    (config / "syncs").mkdir(parents=True, exist_ok=True)
    (config / "syncs" / "bench.toml").write_text(
        f"""
direction = "a-to-b"
initial = "a-into-b"
[a]
connector = "csv"
path = {json.dumps(str(contacts))}
[b]
connector = "salesfire"
base_url = "{url}"
site = "demo-site"
list = "newsletter"
secret = "{SECRET}"
{extra}
""",
        encoding="utf-8",
    )


async def run_sync(root: Path) -> tuple[float, dict[str, Any]]:
    return await harness.run_sync(root, "syncd-salesfire")


async def unlimited(count: int) -> dict[str, Any]:
    app = create_app(None, {"secret": SECRET, "rate_limit": 0, "keep_requests": count * 2})
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        write_contacts(root / "contacts.csv", count)
        async with SandboxServer(app) as server:
            write_sync(
                root / "config",
                root / "contacts.csv",
                server.url,
                "rate_limit = 1000000\nconcurrency = 8",
            )
            elapsed, result = await run_sync(root)
    # every request the emulator answered, retries and 429s included
    calls = sum(app[CALLS_KEY].values())
    bound = 0 + 0 + math.ceil(count / 1)  # pages of Salesfire + pages of CSV + writes / batch
    return {
        "contacts": count,
        "created": result["counts"]["created_b"],
        "stored": len(state(app).lists["newsletter"].customers),
        "calls": calls,
        "lower_bound": bound,
        "within_slack": calls - bound <= SLACK,
        "seconds": round(elapsed, 2),
        "outcome": result["outcome"],
    }


async def limited(count: int) -> dict[str, Any]:
    app = create_app(None, {"secret": SECRET})  # the emulator's default limit: 120 a minute
    sandbox = state(app)
    limit, window = sandbox.rate_limit, sandbox.rate_window
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        write_contacts(root / "contacts.csv", count)
        async with SandboxServer(app) as server:
            write_sync(root / "config", root / "contacts.csv", server.url, "")
            elapsed, result = await run_sync(root)
    throttled = sum(1 for r in sandbox.requests if r["status"] == 429)
    imposed = max(0, math.ceil(count / limit) - 1) * window
    rate = 100  # the connector's default rate_limit, per minute; the budget's burst is a sixth
    budget = max(0.0, (count - rate / 6) / (rate / 60))
    return {
        "contacts": count,
        "created": result["counts"]["created_b"],
        "limit": f"{limit} per {window:g}s",
        "seconds": round(elapsed, 1),
        "imposed_by_limit_seconds": round(imposed, 1),
        "imposed_by_connector_budget_seconds": round(budget, 1),
        "answered_429": throttled,
        "outcome": result["outcome"],
    }


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--limited-count", type=int, default=300)
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
            f"rate limits off: {u['contacts']} contacts, {u['created']} created, "
            f"{u['calls']} API calls vs lower bound {u['lower_bound']} "
            f"({'ok' if u['within_slack'] else 'OVER'}, slack {SLACK}), {u['seconds']}s"
        )
        if "limited" in report:
            lim = report["limited"]
            print(
                f"rate limits on ({lim['limit']}): {lim['contacts']} contacts in "
                f"{lim['seconds']}s; the limit imposes {lim['imposed_by_limit_seconds']}s, "
                f"the connector's budget {lim['imposed_by_connector_budget_seconds']}s; "
                f"{lim['answered_429']} answered 429"
            )
    return 0 if report["unlimited"]["within_slack"] else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
