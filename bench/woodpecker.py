"""Benchmark: the initial two-way merge of a CSV file and a Woodpecker account (emulator).

    .venv/bin/python bench/woodpecker.py [--count 5000] [--service-ms 250] [--skip-limited] [--json]

Both sides hold ``--count`` contacts; half of them are the same people (matched by email, some
with conflicting or missing fields), the other half exist on one side only. A real
``syncd sync`` process runs against the emulator, with the connector's default settings.

1. **Rate limits off** (requests answered at once): reports the API calls the emulator received
   against the lower bound: the pages needed to list each side (Woodpecker: 1,000 prospects a
   page; the CSV side is a file: 0) plus the writes to Woodpecker divided by the largest batch
   its API accepts (20,000 prospects per ``add_prospects_list``). The run must stay within 2
   calls of it (exit status 1 otherwise). A second run with nothing changed is reported too: it
   must write nothing.
2. **Rate limits on**: Woodpecker publishes no request rate; its limit is that it processes one
   request per API key at a time (six more may queue, the rest are dropped; the emulator runs in
   its ``concurrency="strict"`` mode here, which refuses a second concurrent request outright).
   With every request taking ``--service-ms`` on the emulator, the limit imposes at least
   (lower bound of calls) x (service time), since no two requests may overlap. Reports the wall
   time against that (and against the same merge with the limits off, so the difference is what
   the limit costs), and the requests refused for concurrency (0: the connector never sends two
   at once).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import math
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import harness
from aiohttp import web
from syncd_woodpecker.connector import MAX_BATCH, MAX_PER_PAGE
from syncd_woodpecker.sandbox import DEFAULT_API_KEY, make_app, store_of

from syncd.sandbox import CALLS_KEY, SandboxServer, switches

SLACK = 2
SEED = 7


def write_contacts(path: Path, app: web.Application, count: int) -> None:
    """``count`` CSV contacts: the first half are prospects of ``app`` too, the rest are not."""
    prospects = store_of(app).ordered()
    shared = count // 2
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["email", "first_name", "last_name", "company", "title", "tags"])
        for n in range(shared):
            fields = prospects[n].fields
            first = fields.get("first_name", "")
            if n % 5 == 0:
                first = f"{first or 'Someone'}-CRM"  # a conflict: both sides have a value
            company = fields.get("company", "") if n % 3 else ""  # Woodpecker fills the gap
            title = fields.get("title", "") or ("Owner" if n % 2 else "")  # the CSV fills it
            writer.writerow([fields["email"], first, fields.get("last_name", ""), company, title,
                             "crm"])  # fmt: skip
        for n in range(shared, count):
            writer.writerow([f"contact{n}@crm.example", f"Contact{n}", "Bench",
                             f"Company {n % 97}", "", "crm;lead"])  # fmt: skip


def write_sync(root: Path, contacts: Path, base_url: str) -> None:
    (root / "config" / "syncs").mkdir(parents=True, exist_ok=True)
    (root / "config" / "syncs" / "bench.toml").write_text(
        f"""
direction = "two-way"
initial = "merge"
winner = "a"
[a]
connector = "csv"
path = {json.dumps(str(contacts))}
[b]
connector = "woodpecker"
api_key = "{DEFAULT_API_KEY}"
base_url = "{base_url}"
""",
        encoding="utf-8",
    )


async def run_sync(root: Path) -> tuple[float, dict[str, Any]]:
    return await harness.run_sync(root, "syncd-woodpecker")


def calls_made(app: web.Application) -> int:
    """Every request the emulator received (refusals and retries included)."""
    calls: Counter[str] = app[CALLS_KEY]
    return sum(calls.values())


def lower_bound(result: dict[str, Any]) -> int:
    counts = result["counts"]
    pages_b = math.ceil(counts["read_b"] / MAX_PER_PAGE)
    pages_a = 0  # the CSV side is a file: no API
    writes_b = counts["created_b"] + counts["updated_b"]
    return int(pages_a + pages_b + math.ceil(writes_b / MAX_BATCH))


def summary(app: web.Application, elapsed: float, result: dict[str, Any]) -> dict[str, Any]:
    counts = result["counts"]
    calls = calls_made(app)
    bound = lower_bound(result)
    return {
        "outcome": result["outcome"],
        "read": f"csv {counts['read_a']}, woodpecker {counts['read_b']}",
        "linked": counts["linked"],
        "created": f"csv {counts['created_a']}, woodpecker {counts['created_b']}",
        "updated": f"csv {counts['updated_a']}, woodpecker {counts['updated_b']}",
        "conflicts": counts["conflicts"],
        "calls": calls,
        "by_route": {str(k): int(v) for k, v in app[CALLS_KEY].items()},
        "lower_bound": bound,
        "within_slack": calls - bound <= SLACK,
        "refused_concurrent": store_of(app).refused_concurrent,
        "seconds": round(elapsed, 2),
    }


async def unlimited(count: int) -> dict[str, Any]:
    app = make_app(SEED, {"count": count, "concurrency": "strict"})
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        write_contacts(root / "contacts.csv", app, count)
        async with SandboxServer(app) as server:
            write_sync(root, root / "contacts.csv", server.url + "/rest")
            elapsed, result = await run_sync(root)
            first = summary(app, elapsed, result)
            app[CALLS_KEY].clear()
            writes_before = len(store_of(app).add_requests)
            csv_before = (root / "contacts.csv").read_bytes()
            elapsed, result = await run_sync(root)
            second = summary(app, elapsed, result)
            second["writes"] = (
                len(store_of(app).add_requests)
                - writes_before
                + int((root / "contacts.csv").read_bytes() != csv_before)
            )
    first["prospects_after"] = len(store_of(app).prospects)
    return {"contacts_each_side": count, "initial_merge": first, "second_run": second}


async def limited(count: int, service_ms: float) -> dict[str, Any]:
    app = make_app(SEED, {"count": count, "concurrency": "strict"})
    switches(app).latency_ms = service_ms  # every request occupies the key for this long
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        write_contacts(root / "contacts.csv", app, count)
        async with SandboxServer(app) as server:
            write_sync(root, root / "contacts.csv", server.url + "/rest")
            elapsed, result = await run_sync(root)
    report = summary(app, elapsed, result)
    report["service_ms"] = service_ms
    report["imposed_by_limit_seconds"] = round(report["lower_bound"] * service_ms / 1000, 2)
    report["spent_in_requests_seconds"] = round(report["calls"] * service_ms / 1000, 2)
    return {"contacts_each_side": count, "initial_merge": report}


def show(title: str, report: dict[str, Any]) -> None:
    print(title)
    for key, value in report.items():
        if isinstance(value, dict) and key != "by_route":
            print(f"  {key}:")
            for inner, item in value.items():
                print(f"    {inner:<28} {item}")
        else:
            print(f"  {key:<30} {value}")


async def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="contacts on each side")
    parser.add_argument("--service-ms", type=float, default=250.0)
    parser.add_argument("--skip-limited", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    reports: dict[str, Any] = {"rate_limits_off": await unlimited(args.count)}
    if not args.skip_limited:
        on = await limited(args.count, args.service_ms)
        merge = on["initial_merge"]
        # what the limit costs: the same merge with instant answers took this long
        merge["seconds_without_limits"] = reports["rate_limits_off"]["initial_merge"]["seconds"]
        merge["added_by_limits_seconds"] = round(
            merge["seconds"] - merge["seconds_without_limits"], 2
        )
        reports["rate_limits_on"] = on
    if args.json:
        print(json.dumps(reports, indent=2))
    else:
        show("Rate limits off", reports["rate_limits_off"])
        if "rate_limits_on" in reports:
            show("Rate limits on (one request at a time per key)", reports["rate_limits_on"])
    off = reports["rate_limits_off"]
    ok = off["initial_merge"]["within_slack"] and off["second_run"]["writes"] == 0
    if "rate_limits_on" in reports:
        ok = ok and reports["rate_limits_on"]["initial_merge"]["within_slack"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
