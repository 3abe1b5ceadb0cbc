"""Whole syncs run by the real ``syncd`` process: the Xero emulator ⇄ a real Radicale (the shipped
example), a kill -9 in the middle of a run, a phone's edit between read and write, a write-only
Salesfire push from the address book, ``syncd check --connect`` and ``syncd sandbox carddav``."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from syncd_carddav import vcard
from syncd_carddav.servers import DavServer, sample_card
from syncd_carddav.testing import Book, MakeBook, MakeProxy
from syncd_xero.sandbox import make_app as make_xero

from syncd.sandbox import SandboxServer
from syncd.store.models import RecordIssue
from syncd.testing.runner import Syncd

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "config" / "examples" / "xero-carddav.toml"
XERO_SECRET = "sandbox-secret"
ISSUE_TABLE = RecordIssue._meta.table_name


@pytest.fixture
async def xero() -> AsyncIterator[SandboxServer]:
    async with SandboxServer(make_xero(None, {"rate_limits": False})) as server:
        yield server


async def xero_call(xero: SandboxServer, method: str, path: str, body: Any = None) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, xero.url + path, json=body) as response,
    ):
        assert response.status < 300, await response.text()
        return await response.json()


async def xero_contacts(xero: SandboxServer) -> list[dict[str, Any]]:
    return list((await xero_call(xero, "GET", "/_sandbox/xero/contacts"))["Contacts"])


async def consent(line: str) -> str | None:
    url = next((w for w in line.split() if "/identity/connect/authorize?" in w), None)
    if url is None:
        return None
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, allow_redirects=False) as answer,
    ):
        return str(answer.headers["Location"])


async def example_sync(tmp_path: Path, xero: SandboxServer, book: Book, **env: str) -> Syncd:
    """The shipped example, pointed at this emulator and this address book, authorised."""
    syncd = Syncd(
        tmp_path,
        plugins=["syncd-xero", "syncd-carddav"],
        env={"XERO_CLIENT_SECRET": XERO_SECRET, "CARDDAV_PASSWORD": book.server.password, **env},
    )
    text = EXAMPLE.read_text(encoding="utf-8").replace("http://127.0.0.1:8700", xero.url)
    text = text.replace('url = "http://127.0.0.1:5232/"', f'url = "{book.url}"')
    text = text.replace('username = "demo"', f'username = "{book.server.user}"')
    text = text.replace('addressbook = "Contacts"\n', "")
    (syncd.config / "syncs" / "xero-carddav.toml").write_text(text, encoding="utf-8")
    result = await syncd.auth("xero-carddav", "a", consent)
    assert result.status == 0, str(result)
    return syncd


async def cards(book: Book) -> dict[str, vcard.Parsed]:
    found = {}
    async with book.server.session() as session:
        for name in await book.names():
            async with session.get(book.url + name) as response:
                assert response.status == 200
                found[name] = vcard.parse(await response.text())
    return found


def card_emails(found: dict[str, vcard.Parsed]) -> Counter[str]:
    return Counter(str(p.data.get("email") or "").lower() for p in found.values())


PHOTO_CARD = (
    "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:grace-phone\r\nFN:Grace Hopper\r\nN:Hopper;Grace;;;\r\n"
    "EMAIL;TYPE=INTERNET:grace@example.com\r\nEMAIL;TYPE=INTERNET,HOME:amazing@home.example\r\n"
    "PHOTO;ENCODING=b;TYPE=JPEG:/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAAMCAgMCAgMDAwMEAwMEBQgFBQQEBQoH\r\n"
    "X-PHONETIC-FIRST-NAME:Grayce\r\nEND:VCARD\r\n"
)


async def test_xero_and_radicale_two_way_no_duplicates_then_nothing_to_do(
    xero: SandboxServer, rbook: Book, tmp_path: Path
) -> None:
    await xero_call(
        xero,
        "POST",
        "/_sandbox/xero/contacts",
        {
            "Contacts": [
                {"Name": "Ada Lovelace", "FirstName": "Ada", "LastName": "Lovelace",
                 "EmailAddress": "ada@example.com",
                 "Phones": [{"PhoneType": "MOBILE", "PhoneNumber": "07700 900001"}]},
                {"Name": "Grace Hopper", "FirstName": "Grace", "LastName": "Hopper",
                 "EmailAddress": "Grace@Example.com"},
            ]
        },
    )  # fmt: skip
    await rbook.put("grace.vcf", PHOTO_CARD)
    await rbook.put(
        "zoe.vcf", sample_card("zoe", given="Zoë", family="Müller", email="zoe@x.example")
    )
    syncd = await example_sync(tmp_path, xero, rbook)

    first = await syncd.sync("xero-carddav")
    assert first.counts["created_a"] == 1 and first.counts["created_b"] == 1, first.counts
    found = await cards(rbook)
    assert all(n == 1 for n in card_emails(found).values())
    assert set(card_emails(found)) == {"ada@example.com", "grace@example.com", "zoe@x.example"}
    ada = next(p for p in found.values() if p.data.get("email") == "ada@example.com")
    assert ada.data["given"] == "Ada" and ada.data["cell"]
    xero_emails = Counter(c["EmailAddress"].lower() for c in await xero_contacts(xero))
    assert xero_emails == Counter(
        {"ada@example.com": 1, "grace@example.com": 1, "zoe@x.example": 1}
    )

    again = await syncd.sync("xero-carddav")
    assert again.written == 0, again.counts

    # an edit on the phone travels to Xero; the phone's photo and second email stay
    _, body, etag = await rbook.get("grace.vcf")
    await rbook.put("grace.vcf", body.replace("Hopper", "Hopper-Murray"), etag or None)
    edited = await syncd.sync("xero-carddav")
    assert edited.counts["updated_a"] == 1, edited.counts
    grace = next(
        c for c in await xero_contacts(xero) if c["EmailAddress"].lower() == "grace@example.com"
    )
    assert grace["LastName"] == "Hopper-Murray"
    _, body, _ = await rbook.get("grace.vcf")
    assert "PHOTO" in body and "amazing@home.example" in body and "Grayce" in body
    assert (await syncd.sync("xero-carddav")).written == 0


async def test_runs_after_the_first_list_only_what_changed_since_the_sync_token(
    xero: SandboxServer, rbook: Book, tmp_path: Path
) -> None:
    """The address book is listed incrementally, the sync-token as the engine's cursor: a run
    with nothing changed reads no card, a phone's edit is the one card read (and travels), a
    card deleted on the phone reaches Xero as a deletion, and none of it duplicates."""
    await rbook.put_many(
        (f"p{n}.vcf", sample_card(f"p{n}", given=f"P{n}", family="Lee", email=f"p{n}@x.example"))
        for n in range(12)
    )
    syncd = await example_sync(tmp_path, xero, rbook)
    conf = syncd.config / "syncs" / "xero-carddav.toml"
    conf.write_text(
        conf.read_text().replace('deletions = "ignore"', 'deletions = "archive"'),
        encoding="utf-8",
    )
    first = await syncd.sync("xero-carddav")
    assert first.counts["read_b"] == 12 and first.counts["created_a"] == 12, first.counts

    again = await syncd.sync("xero-carddav")
    assert again.written == 0 and again.counts["read_b"] == 0, again.counts

    _, body, etag = await rbook.get("p3.vcf")
    await rbook.put("p3.vcf", body.replace("Lee", "Lee-Smith"), etag or None)
    edited = await syncd.sync("xero-carddav")
    assert edited.counts["read_b"] == 1 and edited.counts["updated_a"] == 1, edited.counts
    by_email = {c["EmailAddress"]: c for c in await xero_contacts(xero)}
    assert by_email["p3@x.example"]["LastName"] == "Lee-Smith"

    await rbook.delete("p5.vcf")
    deleted = await syncd.sync("xero-carddav")
    assert deleted.counts["archived_a"] == 1, deleted.counts
    by_email = {c["EmailAddress"]: c for c in await xero_contacts(xero)}
    assert by_email["p5@x.example"]["ContactStatus"] == "ARCHIVED"
    assert len(by_email) == 12
    assert all(n == 1 for n in card_emails(await cards(rbook)).values())
    assert (await syncd.sync("xero-carddav")).written == 0


@pytest.mark.parametrize("where", ["journaled:2", "sent:2"])
async def test_kill_9_in_the_middle_of_a_run_then_a_rerun_duplicates_nothing(
    xero: SandboxServer, rbook: Book, tmp_path: Path, where: str
) -> None:
    """60 Xero contacts go to the address book in two batches of 50 and 10; the run is killed with
    SIGKILL at a crash point (before a batch is sent, after it returned, after its outcome was
    committed); the rerun must end with each person once on each side."""
    await xero_call(
        xero,
        "POST",
        "/_sandbox/xero/contacts",
        {
            "Contacts": [
                {"Name": f"Person {n}", "FirstName": f"P{n}", "LastName": "Test",
                 "EmailAddress": f"p{n}@example.com"}
                for n in range(60)
            ]
        },
    )  # fmt: skip
    await rbook.put("phone.vcf", sample_card("phone", given="Only", email="only@phone.example"))
    syncd = await example_sync(tmp_path, xero, rbook)
    syncd.env["SYNCD_TEST_CRASH_AT"] = where
    killed = await syncd.run("sync", "xero-carddav", "--json")
    assert killed.status == -signal.SIGKILL, str(killed)
    del syncd.env["SYNCD_TEST_CRASH_AT"]

    rerun = await syncd.sync("xero-carddav", expect=None)
    assert rerun.status == 0, str(rerun)
    found = await cards(rbook)
    emails = card_emails(found)
    assert len(found) == 61 and all(n == 1 for n in emails.values()), emails.most_common(3)
    xero_emails = Counter(c["EmailAddress"].lower() for c in await xero_contacts(xero))
    assert len(xero_emails) == 61 and all(n == 1 for n in xero_emails.values())
    assert (await syncd.sync("xero-carddav")).written == 0
    links = await syncd.links("xero-carddav")
    assert len(links) == 61


async def test_a_phone_edit_between_read_and_write_is_reported_then_merged(
    xero: SandboxServer, radicale: DavServer, new_book: MakeBook, proxy: MakeProxy, tmp_path: Path
) -> None:
    """The phone saves the card while syncd is about to write it: the server refuses syncd's
    PUT (412), the run reports it, and the next run reads the phone's version and merges."""
    book = await new_book(radicale)
    people = [
        {"Name": "Ada Lovelace", "FirstName": "Ada", "LastName": "Lovelace",
         "EmailAddress": "ada@example.com"},
    ]  # fmt: skip
    body = await xero_call(xero, "POST", "/_sandbox/xero/contacts", {"Contacts": people})
    [ada] = body["Contacts"]
    edits = {"armed": False}

    @web.middleware
    async def phone_edits_first(request: web.Request, handler: Any) -> web.StreamResponse:
        if edits["armed"] and request.method == "PUT" and "If-Match" in request.headers:
            edits["armed"] = False
            name = request.path.rsplit("/", 1)[-1]
            _, body, etag = await book.get(name)
            await book.put(
                name, body.replace("\r\nEND:VCARD", "\r\nTITLE:Countess\r\nEND:VCARD"), etag
            )
        response: web.StreamResponse = await handler(request)
        return response

    front = await proxy(radicale, middlewares=[phone_edits_first])
    through_proxy = Book(radicale, front.book_url(book))
    syncd = await example_sync(tmp_path, xero, through_proxy)
    await syncd.sync("xero-carddav")

    await xero_call(
        xero,
        "POST",
        "/_sandbox/xero/contacts",
        {"Contacts": [{"ContactID": ada["ContactID"], "LastName": "King"}]},
    )
    edits["armed"] = True
    refused = await syncd.sync("xero-carddav", expect=None)
    assert refused.counts["failed"] == 1 and not edits["armed"], str(refused)
    errors = await syncd.run("errors", "xero-carddav", "--json")
    assert "412" in errors.stdout
    for output in (refused.stdout, refused.stderr, errors.stdout, errors.stderr):
        assert radicale.password not in output  # the secret is never shown

    # the refused record waits (syncd's backoff, 5 minutes) for the next scheduled run: let
    # that time pass
    with sqlite3.connect(syncd.state / "syncd.db") as db:
        assert db.execute(
            f"UPDATE {ISSUE_TABLE} SET next_attempt_at = '2000-01-01 00:00:00'"
        ).rowcount
    merged = await syncd.sync("xero-carddav")
    assert merged.counts["failed"] == 0
    [card] = (await cards(book)).values()
    assert card.data["family"] == "King"  # Xero's edit
    assert card.data["title"] == "Countess"  # the phone's edit, not overwritten
    [contact] = await xero_contacts(xero)
    assert contact["LastName"] == "King"
    assert (await syncd.sync("xero-carddav")).written == 0


async def test_a_write_only_salesfire_push_from_the_address_book(
    rbook: Book, tmp_path: Path
) -> None:
    from syncd_salesfire.sandbox import create_app, state

    secret = "carddav-push-secret"
    await rbook.put("a.vcf", sample_card("a", given="Ada", family="L", email="ada@example.com",
                                          cell="+44 7700 900001"))  # fmt: skip
    await rbook.put("b.vcf", sample_card("b", given="Bo", family="K", email="bo@example.com"))
    async with SandboxServer(create_app(None, {"secret": secret, "rate_limit": 0})) as salesfire:
        syncd = Syncd(
            tmp_path,
            plugins=["syncd-carddav", "syncd-salesfire"],
            env={"SALESFIRE_SECRET": secret, "CARDDAV_PASSWORD": rbook.server.password},
        )
        syncd.write_sync(
            "book-salesfire",
            f"""
            direction = "a-to-b"
            initial = "a-into-b"
            deletions = "ignore"
            [a]
            connector = "carddav"
            url = "{rbook.url}"
            username = "{rbook.server.user}"
            password = "${{env:CARDDAV_PASSWORD}}"
            [b]
            connector = "salesfire"
            base_url = "{salesfire.url}"
            site = "demo-site"
            list = "newsletter"
            secret = "${{env:SALESFIRE_SECRET}}"
            signature_encoding = "hex"
            types = "TRANSACTIONAL"
            channels = "EMAIL,SMS"
            """,
        )
        first = await syncd.sync("book-salesfire")
        assert first.counts["created_b"] == 2 and first.counts["read_b"] == 0
        customers = {
            c.email: c for c in state(salesfire.app).lists["newsletter"].customers.values()
        }
        assert set(customers) == {"ada@example.com", "bo@example.com"}
        assert customers["ada@example.com"].mobile_number == "+447700900001"
        assert (await syncd.sync("book-salesfire")).written == 0


async def test_check_connect_lists_the_address_books_when_the_choice_is_ambiguous(
    radicale: DavServer, new_book: MakeBook, tmp_path: Path
) -> None:
    await new_book(radicale, "Work")
    await new_book(radicale, "Family")
    syncd = Syncd(tmp_path, plugins=["syncd-carddav"], env={"CARDDAV_PASSWORD": radicale.password})
    syncd.write_sync(
        "phone",
        f"""
        [a]
        connector = "carddav"
        url = "{radicale.url}/"
        username = "{radicale.user}"
        password = "${{env:CARDDAV_PASSWORD}}"
        [b]
        connector = "csv"
        path = "{tmp_path / "crm.csv"}"
        """,
    )
    (tmp_path / "crm.csv").write_text("email\n")
    result = await syncd.run("check", "--connect")
    assert result.status != 0
    line = next(ln for ln in result.stdout.splitlines() if "phone a (carddav)" in ln)
    assert "FAILED" in line and "set addressbook to one of" in line
    assert "'Work'" in line and "'Family'" in line
    assert radicale.password not in result.stdout + result.stderr


async def test_the_sandbox_serves_a_radicale_with_sample_contacts(tmp_path: Path) -> None:
    syncd = Syncd(
        tmp_path, plugins=["syncd-carddav"], env={"CARDDAV_PASSWORD": "demo-sandbox-pass"}
    )
    process = await syncd.start("sandbox", "carddav", "--seed", "1")
    try:
        assert process.stderr is not None
        line = (await asyncio.wait_for(process.stderr.readline(), 120)).decode()
        assert "listening on" in line, line
        url = line.split("listening on ", 1)[1].split()[0]
        syncd.write_sync(
            "phone",
            f"""
            [a]
            connector = "carddav"
            url = "{url}/"
            username = "demo"
            password = "${{env:CARDDAV_PASSWORD}}"
            [b]
            connector = "csv"
            path = "{tmp_path / "crm.csv"}"
            """,
        )
        (tmp_path / "crm.csv").write_text("email,first_name\n")
        check = await syncd.run("check", "--connect")
        assert "address book 'Contacts' (/demo/contacts/)" in check.stdout, str(check)
        result = await syncd.sync("phone")
        assert result.counts["created_b"] == 30
        rows = (tmp_path / "crm.csv").read_text()
        assert rows.count("\n") == 31 and json.dumps("@") and ".example" in rows
    finally:
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.wait(), 60)
