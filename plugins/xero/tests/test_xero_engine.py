"""Whole syncs between Xero (the emulator) and a CSV file, run by the real ``syncd`` process.

The emulator runs in the test's event loop on 127.0.0.1; ``syncd auth`` and ``syncd sync`` run as
child processes exactly as a user runs them, so a sync can also be killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import csv
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from syncd.testing.runner import Syncd

EXAMPLE = Path(__file__).resolve().parents[3] / "config" / "examples" / "xero-csv.toml"
COLUMNS = ["email", "first_name", "last_name", "name", "phone", "city", "company"]


def make_syncd(root: Path) -> Syncd:
    """The shared runner, loading this plugin, with the client secret the example refers to."""
    return Syncd(root, plugins=["syncd-xero"], env={"XERO_CLIENT_SECRET": "sandbox-secret"})


async def consent(line: str) -> str | None:
    """The browser: on the line with the authorisation URL, consent and hand back where the
    emulator redirected to (what a person pastes)."""
    url = next((w for w in line.split() if "/identity/connect/authorize?" in w), None)
    if url is None:
        return None
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, allow_redirects=False) as answer,
    ):
        return str(answer.headers["Location"])


async def auth(syncd: Syncd, sync: str, side: str = "a") -> str:
    """``syncd auth SYNC SIDE`` through the emulator's consent page; what it printed."""
    result = await syncd.auth(sync, side, consent)
    assert result.status == 0, str(result)
    return result.stdout


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in COLUMNS})


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def edit_csv(path: Path, email: str, **changes: str) -> None:
    rows = read_csv(path)
    for row in rows:
        if row["email"] == email:
            row.update(changes)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def sync_file(syncd: Syncd, name: str, url: str, csv_path: Path) -> None:
    """The shipped example, pointed at this emulator and this CSV file."""
    text = EXAMPLE.read_text(encoding="utf-8").replace("http://127.0.0.1:8700", url)
    text = text.replace('path = "contacts.csv"', f"path = {json.dumps(str(csv_path))}")
    (syncd.config / "syncs" / f"{name}.toml").write_text(text, encoding="utf-8")


def writes_made(env: Any) -> int:
    return sum(1 for e in env.exchanges if e.method in ("PUT", "POST") and "Contacts" in e.path)


def emails(contacts: list[dict[str, Any]]) -> Counter[str]:
    return Counter(c["EmailAddress"].lower() for c in contacts if c.get("EmailAddress"))


async def test_two_way_sync_with_csv_merges_resolves_conflicts_and_repeats_nothing(
    xero: Any, tmp_path: Path
) -> None:
    env = await xero()
    await env.add(
        {"Name": "Ada Lovelace", "FirstName": "Ada", "LastName": "Lovelace",
         "EmailAddress": "ada@example.com", "AccountNumber": "A-1",
         "Addresses": [{"AddressType": "STREET", "City": "London"}]},
        {"Name": "Grace Hopper", "FirstName": "Grace", "LastName": "Hopper",
         "EmailAddress": "Grace@Example.com"},
        {"Name": "Acme Ltd", "EmailAddress": ""},  # no email: never copied anywhere
        {"Name": "Old Friend", "EmailAddress": "old@example.com", "ContactStatus": "ARCHIVED"},
    )  # fmt: skip
    contacts = tmp_path / "contacts.csv"
    write_csv(
        contacts,
        [
            {"email": "grace@example.com", "first_name": "Grace", "last_name": "Hopper",
             "phone": "+44 20 7946 0001"},
            {"email": "zoe@example.com", "first_name": "Zoë", "last_name": "Müller",
             "city": "Zürich"},
            {"email": "jane@example.com", "first_name": "Jane", "last_name": "Smith"},
        ],
    )  # fmt: skip
    # a Xero contact already holds the Name the CSV's Jane would get
    await env.add({"Name": "Jane Smith", "EmailAddress": "another.jane@example.com"})
    syncd = make_syncd(tmp_path)
    sync_file(syncd, "xero-csv", env.url, contacts)
    assert "Demo Company (UK)" in await auth(syncd, "xero-csv")

    result = (await syncd.sync("xero-csv")).json
    xero_emails = emails(await env.contacts())
    assert all(count == 1 for count in xero_emails.values()), xero_emails  # no duplicates
    assert {"zoe@example.com", "jane@example.com", "grace@example.com"} <= set(xero_emails)
    stored = {c["EmailAddress"].lower(): c for c in await env.contacts() if c["EmailAddress"]}
    assert stored["zoe@example.com"]["Name"] == "Zoë Müller"
    assert stored["jane@example.com"]["Name"] == "Jane Smith (jane@example.com)"
    grace_phone = {p["PhoneType"]: p for p in stored["grace@example.com"]["Phones"]}["DEFAULT"]
    assert grace_phone["PhoneNumber"].replace(" ", "") == "+442079460001"
    rows = {row["email"].lower(): row for row in read_csv(contacts)}
    assert Counter(row["email"].lower() for row in read_csv(contacts)).most_common(1)[0][1] == 1
    assert rows["ada@example.com"]["city"] == "London"
    assert rows["ada@example.com"]["xero_account_number"] == "A-1"
    assert "old@example.com" not in rows  # archived in Xero: not brought over

    # The Names Xero required and the connector derived (the CSV had none) are Xero's own
    # values, not a person's: they never come back, and a run with nothing changed writes
    # nothing anywhere (rule 2)
    before = writes_made(env)
    result = (await syncd.sync("xero-csv")).json
    names = {row["email"]: row["name"] for row in read_csv(contacts)}
    assert names["zoe@example.com"] == names["jane@example.com"] == ""
    assert writes_made(env) == before
    assert result["counts"]["created_a"] == result["counts"]["updated_a"] == 0
    assert result["counts"]["created_b"] == result["counts"]["updated_b"] == 0


async def test_edits_on_both_sides_merge_and_conflicts_go_to_the_winner(
    xero: Any, tmp_path: Path
) -> None:
    env = await xero()
    [ada] = await env.add(
        {"Name": "Ada Lovelace", "FirstName": "Ada", "LastName": "Lovelace",
         "EmailAddress": "ada@example.com",
         "Addresses": [{"AddressType": "STREET", "City": "London"}]},
    )  # fmt: skip
    contacts = tmp_path / "contacts.csv"
    write_csv(contacts, [])
    syncd = make_syncd(tmp_path)
    sync_file(syncd, "xero-csv", env.url, contacts)
    await auth(syncd, "xero-csv")
    await syncd.sync("xero-csv")

    # different fields edited on each side both survive; the same field goes to Xero (winner a)
    await env.add({"ContactID": ada["ContactID"], "FirstName": "Augusta", "LastName": "King"})
    edit_csv(contacts, "ada@example.com", first_name="Countess", city="Marylebone")
    result = (await syncd.sync("xero-csv", "--full")).json
    ada = {c["ContactID"]: c for c in await env.contacts()}[ada["ContactID"]]
    row = {r["email"]: r for r in read_csv(contacts)}["ada@example.com"]
    assert ada["FirstName"] == row["first_name"] == "Augusta"  # the conflict went to Xero
    assert ada["LastName"] == row["last_name"] == "King"
    street = next(a for a in ada["Addresses"] if a["AddressType"] == "STREET")
    assert street["City"] == row["city"] == "Marylebone"  # the CSV's own edit survived
    assert result["counts"]["conflicts"] >= 1


def held_after(count: int) -> tuple[Any, asyncio.Event, asyncio.Event]:
    """A middleware letting ``count`` creates through, then processing the next one but holding
    its answer: the crash then happens after Xero created the contacts, before syncd heard."""
    holding, release = asyncio.Event(), asyncio.Event()
    seen = 0

    @web.middleware
    async def gate(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        nonlocal seen
        if request.method == "PUT" and request.path.endswith("/Contacts"):
            seen += 1
            if seen > count and not release.is_set():
                response = await handler(request)
                holding.set()
                await release.wait()
                return response
        return await handler(request)

    return gate, holding, release


async def test_kill_9_during_a_batch_of_creates_then_rerun_makes_no_duplicate(
    xero: Any, tmp_path: Path
) -> None:
    gate, holding, release = held_after(1)
    env = await xero(middlewares=[gate])
    contacts = tmp_path / "contacts.csv"
    write_csv(
        contacts,
        [
            {"email": f"person{n}@example.com", "first_name": "Person", "last_name": str(n)}
            for n in range(120)
        ],
    )
    syncd = make_syncd(tmp_path)
    sync_file(syncd, "crash", env.url, contacts)
    await auth(syncd, "crash")
    process = await syncd.start("sync", "crash")
    # the first batch of 50 is created and committed; the second reached Xero, unanswered
    await asyncio.wait_for(holding.wait(), timeout=120)
    process.kill()
    await process.wait()
    assert process.returncode == -9
    release.set()
    await asyncio.sleep(0)
    assert len(await env.contacts()) == 100

    await syncd.sync("crash")
    found = emails(await env.contacts())
    assert set(found) == {f"person{n}@example.com" for n in range(120)}
    assert max(found.values()) == 1, "a contact was created twice"

    links = await syncd.links("crash")
    assert len(links) == 120
    before = writes_made(env)
    await syncd.sync("crash")
    assert writes_made(env) == before


async def test_the_seed_example_xero_and_salesflare_two_way(xero: Any, tmp_path: Path) -> None:
    """The issue's end-to-end example: Xero contacts and Salesflare contacts, two-way, with the
    design's sync file (AccountNumber → custom.xero_account_number, Xero wins conflicts)."""
    from syncd_salesflare import sandbox as salesflare

    from syncd.sandbox import CALLS_KEY, SandboxServer

    env = await xero(seed=21, count=60)
    sf_app = salesflare.make_app(22, {"count": 60, "rate_limit": 0})
    async with SandboxServer(sf_app) as sf:
        syncd = make_syncd(tmp_path)
        syncd.plugins = ["syncd-xero", "syncd-salesflare"]
        syncd.env["SALESFLARE_API_KEY"] = "sandbox-api-key"
        (syncd.config / "syncs" / "xero-salesflare.toml").write_text(
            f"""
direction = "two-way"
interval = "10m"
initial = "merge"
winner = "a"
deletions = "ignore"

[a]
connector = "xero"
client_id = "sandbox-client"
client_secret = "${{env:XERO_CLIENT_SECRET}}"
tenant = "Demo Company (UK)"
api_url = "{env.url}"
identity_url = "{env.url}"
login_url = "{env.url}"

[b]
connector = "salesflare"
api_key = "${{env:SALESFLARE_API_KEY}}"
base_url = "{sf.url}"

[[fields]]
a = "AccountNumber"
b = "custom.xero_account_number"
direction = "a-to-b"
""",
            encoding="utf-8",
        )
        state = sf_app[salesflare.STATE]

        def sf_emails() -> Counter[str]:
            return Counter(
                str(c.get("email") or "").lower()
                for c in state.contacts.values()
                if c.get("email") and not c.get("archived")
            )

        seeded = sf_emails()  # Salesflare's seed holds an email twice on purpose (ambiguous)
        await auth(syncd, "xero-salesflare")
        result = (await syncd.sync("xero-salesflare", expect=None)).json
        assert result["outcome"] in ("success", "partial"), result

        active = [c for c in await env.contacts() if c["ContactStatus"] == "ACTIVE"]
        xero_emails = emails(active)
        assert max(xero_emails.values()) == 1  # no duplicates, on either side
        assert all(n <= max(1, seeded[email]) for email, n in sf_emails().items())
        sf_emails_now = sf_emails()
        # every active Xero contact with an email reached Salesflare, and back
        assert set(xero_emails) <= set(sf_emails_now)
        ambiguous = {email for email, n in seeded.items() if n > 1}
        assert set(sf_emails_now) - ambiguous <= set(emails(await env.contacts()))
        numbered = [c for c in active if c.get("AccountNumber") and c.get("EmailAddress")]
        by_email = {str(c.get("email")).lower(): c for c in state.contacts.values()}
        for contact in numbered:
            custom = by_email[contact["EmailAddress"].lower()].get("custom") or {}
            assert custom.get("xero_account_number") == contact["AccountNumber"]

        # the next run writes nothing anywhere: not even the Names Xero derived (rule 2)
        xero_writes = writes_made(env)
        sf_calls = dict(sf_app[CALLS_KEY])
        result = (await syncd.sync("xero-salesflare")).json
        assert writes_made(env) == xero_writes
        sf_writes = {k: v for k, v in sf_app[CALLS_KEY].items() if not k.startswith("GET")}
        assert sf_writes == {k: v for k, v in sf_calls.items() if not k.startswith("GET")}


async def test_a_revoked_grant_and_a_spent_day_stop_the_run_visibly(
    xero: Any, tmp_path: Path
) -> None:
    env = await xero(seed=5, count=30, rate_limits=True)
    contacts = tmp_path / "contacts.csv"
    write_csv(contacts, [{"email": "one@example.com", "first_name": "One", "name": "One"}])
    syncd = make_syncd(tmp_path)
    sync_file(syncd, "xero-csv", env.url, contacts)
    await auth(syncd, "xero-csv")
    await syncd.sync("xero-csv")
    # the day's budget is spent: the run is deferred, not retried for hours
    await env.control("POST", "/_sandbox/xero/limits", {"day_limit": 0})
    run = await syncd.sync("xero-csv", "--full", expect=None)
    result, err = run.json, run.stderr
    assert result["outcome"] == "deferred", result
    assert "daily" in result["message"]
    # a revoked grant: the sync needs a new authorisation, and says how
    await env.control("POST", "/_sandbox/xero/limits", {"enabled": False})
    await env.control("POST", "/_sandbox/xero/grants/revoke", {})
    await env.control("POST", "/_sandbox/xero/tokens/expire")
    run = await syncd.sync("xero-csv", expect=None)
    result, err = run.json, run.stderr
    assert result["outcome"] == "needs_auth", result
    assert "syncd auth xero-csv a" in result["message"]
    assert "sbx-rt-" not in result["message"] + err  # no token in what the user sees


async def test_check_connect_before_auth_names_the_fix(xero: Any, tmp_path: Path) -> None:
    env = await xero()
    contacts = tmp_path / "contacts.csv"
    write_csv(contacts, [])
    syncd = make_syncd(tmp_path)
    sync_file(syncd, "xero-csv", env.url, contacts)
    process = await syncd.start("check", "--connect")
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 3, (out, err)
    line = next(li for li in out.decode().splitlines() if "xero-csv a (xero)" in li)
    # as the needs_auth state says it: the command that fixes it
    assert "FAILED: Xero has not been authorised" in line
    assert line.endswith("(fix: syncd auth xero-csv a)"), line
    assert "Traceback" not in err.decode()
