"""``syncd sync`` between a CSV file and the Salesflare sandbox, run as a user runs it.

A two-way merge with conflicts, the no-duplicate rule (a re-cased email, an email held twice in
Salesflare, the same new person added on both sides), edits on both sides, write-free repeat
runs, and a ``kill -9`` in the middle of a batch of creates followed by a rerun.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from syncd_salesflare.sandbox_store import SalesflareState

HEADER = ["email", "first_name", "last_name", "company", "title", "city", "tags"]


def write_csv(path: Path, rows: list[dict[str, str]], header: list[str] = HEADER) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, restval="")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    path.write_text(buffer.getvalue(), encoding="utf-8")


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def csv_by_email(path: Path) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for row in read_csv(path):
        email = row["email"].strip().lower()
        if email:
            assert email not in found, f"duplicate CSV row for {email}"
            found[email] = row
    return found


def add_contact(state: SalesflareState, **values: Any) -> int:
    account = values.pop("account", None)
    if account is not None:
        found = [i for i, a in state.accounts.items() if a["name"] == account]
        values["account"] = found[0] if found else state.create_account({"name": account})
    return state.create_contact(state.validate_contact(values, [], creating=True), force=True)


def salesflare_view(state: SalesflareState) -> dict[str, list[dict[str, Any]]]:
    """Contacts by email (a list: an email may be held twice), in a comparable shape."""
    found: dict[str, list[dict[str, Any]]] = {}
    for contact in state.contacts.values():
        shown = state.render_contact(contact)
        found.setdefault(shown["email"] or "", []).append(
            {
                "first": shown["firstname"],
                "last": shown["lastname"],
                "company": (shown["account"] or {}).get("name"),
                "title": shown["role"],
                "city": shown["addresses"][0]["city"] if shown["addresses"] else None,
                "tags": sorted(t["name"] for t in shown["tags"]),
            }
        )
    return found


def contact_writes(sandbox: Any) -> int:
    return sum(
        1
        for method, path, _, _ in sandbox.requests
        if method in ("POST", "PUT", "DELETE") and path.startswith(("/contacts", "/accounts"))
    )


def csv_sync(syncd: Any, path: Path, sandbox: Any, **extra: str) -> None:
    keys = {"direction": "two-way", "initial": "merge", "winner": "a", **extra}
    top = "\n        ".join(f'{key} = "{value}"' for key, value in keys.items())
    syncd.write_sync(
        "crm",
        f"""
        {top}

        [a]
        connector = "csv"
        path = "{path}"

        [b]
        connector = "salesflare"
        api_key = "${{env:SALESFLARE_API_KEY}}"
        base_url = "{sandbox.url}"
        calls_per_minute = 60000
        create_batch_size = 50
        """,
    )


async def test_csv_two_way_merge_conflicts_and_no_duplicates(
    start_sandbox: Any, syncd: Any, monkeypatch: Any
) -> None:
    monkeypatch.setenv("SALESFLARE_API_KEY", "sandbox-api-key")
    sandbox = await start_sandbox()
    state = sandbox.state
    bob = add_contact(
        state,
        firstname="Bob",
        lastname="Beta",
        email="bob@beta.test",
        account="Beta BV",
        address={"city": "Amsterdam"},
        tags=["customer"],
        position={"role": "CFO"},
    )
    carol = add_contact(state, firstname="Carol", lastname="Cole", email="carol@cole.test")
    for first in ("Dup", "Dupe"):  # one email held by two contacts (Salesflare's force=true)
        add_contact(state, firstname=first, email="dup@twice.test")
    crm = syncd.root / "crm.csv"
    write_csv(
        crm,
        [
            {"email": "ann@acme.test", "first_name": "Ann", "last_name": "Lee",
             "company": "Acme", "title": "CEO", "city": "Gent", "tags": "vip;customer"},
            {"email": "Bob@Beta.test ", "first_name": "Bob", "last_name": "Beta",
             "company": "Beta BV", "city": "Utrecht", "tags": "lead"},
            {"email": "", "first_name": "Nomail", "last_name": "Person"},
            {"email": "dup@twice.test", "first_name": "Dup", "last_name": "Licate"},
        ],
    )  # fmt: skip
    csv_sync(syncd, crm, sandbox)

    # --- the first run merges both lists -----------------------------------------------------
    first = (await syncd.sync("crm")).counts
    assert (first["created_a"], first["created_b"]) == (1, 1)  # carol → CSV, ann → Salesflare
    assert first["linked"] == 1  # bob, matched by email whatever its case and spaces
    assert first["conflicts"] == 2  # bob's city and tags: the CSV (winner a) wins
    assert first["excluded"] == 1  # the row without an email
    assert first["ambiguous"] >= 1  # dup@twice.test is held twice in Salesflare: not guessed
    view = salesflare_view(state)
    assert view["ann@acme.test"] == [
        {"first": "Ann", "last": "Lee", "company": "Acme", "title": "CEO", "city": "Gent",
         "tags": ["customer", "vip"]}
    ]  # fmt: skip
    assert view["bob@beta.test"] == [
        {"first": "Bob", "last": "Beta", "company": "Beta BV", "title": "CFO",
         "city": "Utrecht", "tags": ["lead"]}
    ]  # fmt: skip
    assert len(view["dup@twice.test"]) == 2 and len(view) == 4  # nothing else was created
    rows = csv_by_email(crm)
    assert sorted(rows) == ["ann@acme.test", "bob@beta.test", "carol@cole.test", "dup@twice.test"]
    assert rows["bob@beta.test"]["title"] == "CFO"  # only Salesflare had it: filled in
    assert (rows["carol@cole.test"]["first_name"], rows["carol@cole.test"]["last_name"]) == (
        "Carol",
        "Cole",
    )
    assert any(row["first_name"] == "Nomail" for row in read_csv(crm))  # left alone

    # --- nothing changed: nothing is written -------------------------------------------------
    before, writes = crm.read_bytes(), contact_writes(sandbox)
    second = (await syncd.sync("crm")).counts
    assert not any(second[k] for k in ("created_a", "created_b", "updated_a", "updated_b"))
    assert contact_writes(sandbox) == writes and crm.read_bytes() == before

    # --- edits on both sides; the same new person added on both ------------------------------
    rows = read_csv(crm)
    for row in rows:
        if row["email"].strip().lower() == "bob@beta.test":
            row["title"] = "CTO"  # a different field than Salesflare's edit: both survive
        if row["email"] == "carol@cole.test":
            row["last_name"] = "Cole-Csv"  # the same field as Salesflare's edit: a wins
    rows.append({"email": "dan@dee.test", "first_name": "Dan", "last_name": "Dee"})
    write_csv(crm, rows, header=list(rows[0]))  # keeping the id column syncd added
    state.update_contact(bob, {"address": {"city": "Rotterdam"}})
    state.update_contact(carol, {"lastname": "Cole-Salesflare"})
    add_contact(state, firstname="Dan", lastname="Dee", email="DAN@dee.test")

    third = (await syncd.sync("crm")).counts
    assert third["conflicts"] == 1 and third["created_a"] == third["created_b"] == 0
    view = salesflare_view(state)
    assert view["bob@beta.test"][0]["title"] == "CTO"
    assert view["bob@beta.test"][0]["city"] == "Rotterdam"
    assert view["carol@cole.test"][0]["last"] == "Cole-Csv"
    assert len(view["dan@dee.test"]) == 1  # linked, not created a second time
    rows = csv_by_email(crm)
    assert rows["bob@beta.test"]["city"] == "Rotterdam"
    assert rows["carol@cole.test"]["last_name"] == "Cole-Csv"
    emails = Counter(c["email"] for c in state.contacts.values())
    assert emails == Counter(
        ["ann@acme.test", "bob@beta.test", "carol@cole.test", "dan@dee.test"]
        + ["dup@twice.test"] * 2
    )

    before, writes = crm.read_bytes(), contact_writes(sandbox)
    await syncd.sync("crm")
    assert contact_writes(sandbox) == writes and crm.read_bytes() == before


def hold_after_creating(
    count: int,
) -> tuple[Callable[..., Awaitable[web.StreamResponse]], asyncio.Event, asyncio.Event]:
    """A middleware that lets ``count`` POST /contacts through, then processes the next one
    but holds its answer back: the contacts exist in Salesflare, the caller never hears."""
    holding, release = asyncio.Event(), asyncio.Event()
    seen = 0

    @web.middleware
    async def gate(request: web.Request, handler: Any) -> web.StreamResponse:
        nonlocal seen
        response: web.StreamResponse = await handler(request)
        if request.method == "POST" and request.path == "/contacts":
            seen += 1
            if seen > count and not release.is_set():
                holding.set()
                await release.wait()
        return response

    return gate, holding, release


async def test_kill_9_during_a_batch_of_creates_then_rerun_makes_no_duplicate(
    start_sandbox: Any, syncd: Any, monkeypatch: Any
) -> None:
    monkeypatch.setenv("SALESFLARE_API_KEY", "sandbox-api-key")
    gate, holding, release = hold_after_creating(2)
    sandbox = await start_sandbox(middlewares=[gate])
    crm = syncd.root / "crm.csv"
    people = [
        {"email": f"person{n}@example.test", "first_name": f"Person{n}", "last_name": "Test"}
        for n in range(230)
    ]
    write_csv(crm, people)
    csv_sync(syncd, crm, sandbox, initial="a-into-b")

    process = await syncd.start("sync", "crm")
    # two batches of 50 are answered; the third is created in Salesflare, its answer held
    await asyncio.wait_for(holding.wait(), timeout=120)
    process.kill()
    await process.wait()
    assert process.returncode == -9
    release.set()
    assert len(sandbox.state.contacts) == 150

    result = await syncd.sync("crm")
    emails = Counter(c["email"] for c in sandbox.state.contacts.values())
    assert emails == Counter(p["email"] for p in people), "a contact was created twice"
    assert result.counts["created_b"] <= 80  # only what the first run had not sent
    links = await syncd.links("crm")
    assert len(links) == 230 and all(link["a"] and link["b"] for link in links)
    assert {link["b"] for link in links} == {str(i) for i in sandbox.state.contacts}

    writes = contact_writes(sandbox)
    again = await syncd.sync("crm")
    assert again.counts["created_b"] == 0 and contact_writes(sandbox) == writes
