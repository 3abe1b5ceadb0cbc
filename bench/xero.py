"""Benchmark: the initial merge of Xero contacts with a CSV file, against the Xero emulator.

    .venv/bin/python bench/xero.py [--count 5000] [--limited-count 5000] [--skip-limited]

Xero holds ``--count`` seeded contacts (some archived, some without an email); the CSV holds as
many, a fifth of them sharing an email with a Xero contact (with a mobile number, which about half
of those Xero contacts lack, so the merge updates them) and the rest new. One real ``syncd sync``
process does the first (``merge``) run.

1. **Rate limits off**: reports the Accounting API calls the emulator received against the lower
   bound: the pages needed to list Xero (archived included, 1,000 a page) plus the creates and
   updates divided by the batch size (50: Xero has no element cap but a 3.5 MB body limit and
   recommends about 50, vendors.md §1.4); the CSV side is a file and costs no call. The run must
   stay within 2 calls of the bound (exit status 1 otherwise). Identity calls (/Connections, the
   token endpoint) are reported apart.
2. **Rate limits on** (Xero's 60 calls a minute per organisation in fixed windows, 5 at a time,
   5,000 a day): the same merge with the connector's default budget. Reports the wall time
   against the time the limit itself imposes: every full window of 60 calls after the first
   costs a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import math
import os
import random
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from syncd_xero.connector import XeroConnector
from syncd_xero.sandbox import STATE_KEY, make_app

from syncd.connector import ConnectorContext
from syncd.sandbox import CALLS_KEY, SandboxServer

SYNCD = str(Path(sys.executable).with_name("syncd"))
SLACK = 2
PAGE = 1000
BATCH = 50


class BrowserPrompt:
    """``syncd auth``'s prompt, answered as a browser would: consent, report where it landed."""

    url = ""

    def show(self, text: str) -> None:
        for word in text.split():
            if "/identity/connect/authorize?" in word:
                self.url = word

    def ask(self, question: str) -> str:
        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: Any, **kwargs: Any) -> None:
                return None

        try:
            urllib.request.build_opener(NoRedirect).open(self.url, timeout=30)
        except urllib.error.HTTPError as redirect:
            return str(redirect.headers["Location"])
        raise RuntimeError("the emulator did not redirect")


def xero_contacts(app: Any) -> list[dict[str, Any]]:
    org = next(iter(app[STATE_KEY].orgs.values()))
    return list(org.contacts.values())


def write_csv(path: Path, xero: list[dict[str, Any]], count: int) -> int:
    """CSV contacts: a fifth share an email with Xero; returns how many do."""
    rng = random.Random(2)
    emails = [
        c["EmailAddress"] for c in xero if c["EmailAddress"] and c["ContactStatus"] == "ACTIVE"
    ]
    shared = rng.sample(emails, min(len(emails), count // 5))
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["email", "first_name", "last_name", "name", "mobile"])
        for n, email in enumerate(shared):
            writer.writerow([email.lower(), "", "", "", f"+4477009{n:05d}"])
        for n in range(count - len(shared)):
            writer.writerow(
                [f"bench{n}@example.org", "Bench", f"Person {n}", f"Bench Person {n}", ""]
            )
    return len(shared)


def write_sync(config: Path, contacts: Path, url: str, extra: str) -> None:
    (config / "syncs").mkdir(parents=True, exist_ok=True)
    (config / "syncs" / "bench.toml").write_text(
        f"""
direction = "two-way"
initial = "merge"
winner = "a"
[a]
connector = "xero"
client_id = "sandbox-client"
client_secret = "sandbox-secret"
tenant = "Demo Company (UK)"
api_url = "{url}"
identity_url = "{url}"
login_url = "{url}"
{extra}
[b]
connector = "csv"
path = {json.dumps(str(contacts))}
""",
        encoding="utf-8",
    )


async def authorise(root: Path, url: str) -> None:
    settings = {
        "client_id": "sandbox-client",
        "client_secret": "sandbox-secret",
        "tenant": "Demo Company (UK)",
        "api_url": url,
        "identity_url": url,
        "login_url": url,
    }
    connector = XeroConnector(settings, ConnectorContext("bench", "a", root / "state"))
    try:
        await connector.authorize(BrowserPrompt())
    finally:
        await connector.close()


async def run_sync(root: Path) -> tuple[float, dict[str, Any]]:
    env = {**os.environ, "SYNCD_LOAD_PLUGINS": "syncd-xero"}
    args = [SYNCD, "--config", str(root / "config"), "--state-dir", str(root / "state")]
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *args, "sync", "bench", "--json", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    elapsed = time.monotonic() - started
    try:
        result = json.loads(out.decode())
    except ValueError:
        message = f"syncd sync failed ({process.returncode}):\n{err.decode()[-3000:]}"
        raise SystemExit(message) from None
    return elapsed, result


async def merge(count: int, options: dict[str, Any], extra: str) -> dict[str, Any]:
    app = make_app(1, {"count": count, **options})
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "state").mkdir()
        contacts = root / "contacts.csv"
        listed = len(xero_contacts(app))
        shared = write_csv(contacts, xero_contacts(app), count)
        async with SandboxServer(app) as server:
            write_sync(root / "config", contacts, server.url, extra)
            await authorise(root, server.url)
            app[CALLS_KEY].clear()
            elapsed, result = await run_sync(root)
            calls = dict(app[CALLS_KEY])
    return {
        "elapsed": elapsed,
        "result": result,
        "calls": calls,
        "listed": listed,
        "shared": shared,
    }


def report(run: dict[str, Any], title: str) -> tuple[int, int]:
    counts = run["result"]["counts"]
    api = sum(n for route, n in run["calls"].items() if "/api.xro/2.0/" in route)
    identity = sum(n for route, n in run["calls"].items() if "/api.xro/2.0/" not in route)
    pages = max(1, math.ceil(run["listed"] / PAGE))
    creates, updates = counts["created_a"], counts["updated_a"]
    bound = pages + math.ceil(creates / BATCH) + math.ceil(updates / BATCH)
    print(f"== {title}")
    print(f"   outcome {run['result']['outcome']}, {run['elapsed']:.1f}s wall")
    print(
        f"   Xero: {run['listed']} contacts listed, {creates} created, {updates} updated; "
        f"CSV: {counts['created_b']} created, {counts['updated_b']} updated; "
        f"{counts['linked']} linked by email, {counts['excluded']} excluded"
    )
    print(
        f"   Accounting API calls {api} (lower bound {bound} = {pages} pages + "
        f"{math.ceil(creates / BATCH)} create + {math.ceil(updates / BATCH)} update batches); "
        f"identity calls {identity}"
    )
    for route, n in sorted(run["calls"].items()):
        print(f"     {n:6d}  {route}")
    return api, bound


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--limited-count", type=int, default=5000)
    parser.add_argument("--skip-limited", action="store_true")
    args = parser.parse_args()

    fast = await merge(args.count, {"rate_limits": False}, "minute_limit = 1000000")
    api, bound = report(fast, f"initial merge, {args.count} + {args.count}, rate limits off")
    status = 0
    if api - bound > SLACK:
        print(f"   FAIL: {api - bound} calls over the lower bound (allowed: {SLACK})")
        status = 1
    else:
        print(f"   ok: within {SLACK} calls of the lower bound ({api - bound:+d})")

    if not args.skip_limited:
        limited = await merge(args.limited_count, {"rate_limits": True}, "")
        api, _ = report(limited, f"initial merge, {args.limited_count} each, Xero's limits on")
        imposed = 60.0 * max(0, math.ceil(api / 60) - 1)
        print(
            f"   wall {limited['elapsed']:.1f}s against {imposed:.0f}s imposed by 60 calls a "
            f"minute ({api} calls); overhead {limited['elapsed'] - imposed:+.1f}s"
        )
    return status


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
