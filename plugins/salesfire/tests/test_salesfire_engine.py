"""Whole syncs into Salesfire: the real ``syncd sync`` process, a CSV file, the emulator.

The emulator runs in the test's event loop on 127.0.0.1; ``syncd`` runs as a child process
exactly as a user runs it, so that it can also be killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web
from syncd_salesfire.sandbox import create_app, state

from syncd.sandbox import SandboxServer
from syncd.testing.runner import Syncd

SECRET = "engine-test-secret"
EXAMPLE = Path(__file__).resolve().parents[3] / "config" / "examples" / "csv-salesfire.toml"


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    columns = ["email", "first_name", "last_name", "name", "mobile", "tags", "birthday"]
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in columns})


def posts(app: web.Application) -> int:
    calls = state(app).requests
    return sum(1 for r in calls if r["path"].startswith("/client/"))


def customers_by_email(app: web.Application, list_name: str = "newsletter") -> dict[str, Any]:
    found: dict[str, Any] = {}
    for customer in state(app).lists[list_name].customers.values():
        key = customer.email or customer.mobile_number
        assert key not in found, f"duplicate customer {key}"
        found[key] = customer
    return found


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    app = create_app(None, {"secret": SECRET, "rate_limit": 0})
    async with SandboxServer(app) as server:
        yield server


@pytest.fixture
def syncd(tmp_path: Path) -> Syncd:
    """The shared runner, loading this plugin, with the secret the example refers to."""
    return Syncd(tmp_path, plugins=["syncd-salesfire"], env={"SALESFIRE_SECRET": SECRET})


async def push_directly(server: SandboxServer, customer: dict[str, Any]) -> None:
    """A customer Salesfire already had before syncd (added through the API by someone else)."""
    body = json.dumps(customer).encode()
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    async with (
        ClientSession() as session,
        session.post(
            f"{server.url}/client/demo-site/customers/newsletter",
            data=body,
            headers={"X-Signature": signature},
        ) as response,
    ):
        assert response.status == 201


async def test_csv_to_salesfire_with_rules_then_nothing_to_push(
    sandbox: SandboxServer, syncd: Syncd, tmp_path: Path
) -> None:
    contacts = tmp_path / "contacts.csv"
    write_csv(
        contacts,
        [
            {"email": "ada@example.com", "name": "Ada Lovelace", "mobile": "07700 900001",
             "tags": "newsletter", "birthday": "1815-12-10"},
            {"email": "grace@example.com", "name": "Grace Hopper", "tags": "customer"},
            {"email": "zoe@example.com", "name": "Zoë Ó Súilleabháin", "mobile": "+447700900003",
             "tags": "newsletter;no-sms"},
            {"email": "known@example.com", "name": "Known Already", "mobile": "07700 900004"},
            {"email": "twice@example.com", "name": "Twice One"},
            {"email": "TWICE@example.com", "name": "Twice Two"},
            {"email": "not-an-email", "name": "Typo"},
        ],
    )  # fmt: skip
    # the example config, pointed at this file and this emulator
    text = EXAMPLE.read_text(encoding="utf-8")
    text = text.replace('path = "contacts.csv"', f"path = {json.dumps(str(contacts))}")
    text = text.replace("http://127.0.0.1:8900", sandbox.url)
    (syncd.config / "syncs" / "csv-salesfire.toml").write_text(text, encoding="utf-8")
    await push_directly(
        sandbox,
        {"email": "known@example.com", "types": ["MARKETING"], "channels": ["EMAIL"],
         "update_existing": True, "attributes": {"name": "Known", "loyalty": "gold"}},
    )  # fmt: skip
    app = sandbox.app

    result = (await syncd.sync("csv-salesfire", expect=1)).json
    assert result["outcome"] == "partial"  # the typo'd email failed
    assert result["counts"]["read_b"] == 0  # Salesfire is never read
    stored = customers_by_email(app)  # also: no email twice
    assert set(stored) == {
        "ada@example.com", "grace@example.com", "zoe@example.com", "known@example.com"
    }  # fmt: skip
    ada, grace = stored["ada@example.com"], stored["grace@example.com"]
    zoe = stored["zoe@example.com"]
    assert ada.types == ["MARKETING", "TRANSACTIONAL"] and ada.channels == ["EMAIL", "SMS"]
    assert ada.mobile_number == "+447700900001"
    assert ada.attributes["date_of_birth"] == "1815-12-10"
    assert grace.types == ["TRANSACTIONAL"] and grace.channels == ["EMAIL"]  # no mobile: no SMS
    assert zoe.channels == ["EMAIL"] and zoe.attributes["name"] == "Zoë Ó Súilleabháin"
    known = stored["known@example.com"]  # upserted, not duplicated; its own attributes kept
    assert known.attributes["name"] == "Known Already" and known.attributes["loyalty"] == "gold"
    assert known.types == ["TRANSACTIONAL"]

    errors = (await syncd.run("errors", "csv-salesfire", "--json")).json
    reasons = json.dumps(errors)
    assert "'not-an-email' is not a valid email address" in reasons

    sent = posts(app)
    result = (await syncd.sync("csv-salesfire", expect=None)).json
    assert posts(app) == sent, "a second run with no edits must push nothing"
    assert result["counts"]["created_b"] == 0 and result["counts"]["updated_b"] == 0

    # an edit on the CSV side is pushed again, as the whole customer
    rows = list(csv.DictReader(contacts.open(encoding="utf-8")))
    for row in rows:
        if row["email"] == "grace@example.com":
            row["name"], row["tags"] = "Rear Admiral Grace Hopper", "customer;newsletter"
    with contacts.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    result = (await syncd.sync("csv-salesfire", expect=None)).json
    assert result["counts"]["updated_b"] == 1
    assert posts(app) == sent + 1
    grace = customers_by_email(app)["grace@example.com"]
    assert grace.attributes["name"] == "Rear Admiral Grace Hopper"
    assert grace.types == ["MARKETING", "TRANSACTIONAL"]
    assert len(customers_by_email(app)) == 4


class HeldAfter:
    """A middleware letting ``count`` pushes through, then holding the rest until released;
    :meth:`settle` releases them and returns once every held push has been processed (or
    dropped), so that no push of the killed run lands later, in the middle of the next one."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.seen = 0
        self.held = 0
        self.holding = asyncio.Event()
        self.release = asyncio.Event()
        self.settled = asyncio.Event()

    @web.middleware
    async def gate(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path.startswith("/client/"):
            self.seen += 1
            if self.seen > self.count and not self.release.is_set():
                self.held += 1
                self.holding.set()
                try:
                    await self.release.wait()
                    return await handler(request)
                finally:
                    self.held -= 1
                    if self.held == 0:
                        self.settled.set()
        return await handler(request)

    async def settle(self) -> None:
        self.release.set()
        async with asyncio.timeout(120):
            await self.settled.wait()


async def test_kill_9_during_a_batch_of_creates_then_rerun_makes_no_duplicate(
    syncd: Syncd, tmp_path: Path
) -> None:
    contacts = tmp_path / "contacts.csv"
    write_csv(
        contacts,
        [{"email": f"person{n}@example.com", "name": f"Person {n}"} for n in range(40)],
    )
    app = create_app(None, {"secret": SECRET, "rate_limit": 0})
    held = HeldAfter(14)
    app.middlewares.append(held.gate)
    async with SandboxServer(app) as server:
        (syncd.config / "syncs" / "crash.toml").write_text(
            f"""
direction = "a-to-b"
initial = "a-into-b"
[a]
connector = "csv"
path = {json.dumps(str(contacts))}
[b]
connector = "salesfire"
base_url = "{server.url}"
site = "demo-site"
list = "newsletter"
secret = "${{env:SALESFIRE_SECRET}}"
batch_size = 10
concurrency = 3
rate_limit = 100000
""",
            encoding="utf-8",
        )
        process = await syncd.start("sync", "crash")
        # the first batch of ten is done and committed; the second is in flight, held
        await asyncio.wait_for(held.holding.wait(), timeout=120)
        process.kill()
        await process.wait()
        assert process.returncode == -9
        # what reached Salesfire before the kill is processed there although no one hears back
        await held.settle()
        await syncd.sync("crash")
        stored = customers_by_email(app)  # raises on any email stored twice
        assert set(stored) == {f"person{n}@example.com" for n in range(40)}

        links = await syncd.links("crash")
        assert len(links) == 40
        assert {link["b"] for link in links} == set(stored)

        sent = posts(app)
        await syncd.sync("crash", expect=None)
        assert posts(app) == sent, "after the recovery run nothing is left to push"


async def test_a_write_only_side_is_never_read_config_refused(syncd: Syncd) -> None:
    (syncd.config / "syncs" / "backwards.toml").write_text(
        """
direction = "two-way"
[a]
connector = "csv"
path = "contacts.csv"
[b]
connector = "salesfire"
site = "demo-site"
list = "newsletter"
secret = "${env:SALESFIRE_SECRET}"
""",
        encoding="utf-8",
    )
    check = await syncd.run("check")
    assert check.status == 2, str(check)
    err = check.stderr
    assert "backwards.toml" in err and "direction" in err and "write-only" in err
