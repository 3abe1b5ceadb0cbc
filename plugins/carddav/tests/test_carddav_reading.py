"""Discovery and listing against real servers: Radicale and Xandikos (``book``/``server`` run
on both), Radicale alone where only it can play the part (``rbook``)."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest
from syncd_carddav.connector import CardDavConnector
from syncd_carddav.servers import DavServer, sample_card
from syncd_carddav.testing import Book, Connect, MakeBook, MakeProxy, listing

from syncd.connector import ConnectorConfigError, NeedsReauth


async def test_discovery_from_the_server_root_finds_the_one_address_book(
    server: DavServer, book: Book, connect: Connect, new_book: MakeBook
) -> None:
    """From the root: /.well-known/carddav or the root's current-user-principal, then the
    principal's addressbook-home-set, then the address books there."""
    connector = await connect(server, server.url, addressbook=book.url.rstrip("/").rsplit("/")[-1])
    assert (await connector.check()).startswith("address book")
    assert connector.book is not None and connector.book.url == book.url
    assert book.url in {b.url for b in connector.books}


async def test_an_address_book_url_is_used_as_it_is(
    server: DavServer, book: Book, connect: Connect
) -> None:
    connector = await connect(server, book.url)
    answer = await connector.check()
    assert "WebDAV sync" in answer
    assert connector.books == [connector.book]


async def test_well_known_carddav_leads_to_the_principal(
    radicale: DavServer, rbook: Book, connect: Connect
) -> None:
    """A URL that is neither an address book nor names a principal: the server's
    /.well-known/carddav is asked (RFC 6764)."""
    connector = await connect(
        radicale, radicale.url + "/.well-known/carddav", addressbook=rbook.url
    )
    await connector.check()
    assert connector.book is not None and connector.book.url == rbook.url


async def test_an_ambiguous_choice_lists_the_address_books(
    radicale: DavServer, rbook: Book, connect: Connect, new_book: MakeBook
) -> None:
    # a name of its own: the server is shared by the session's tests (another makes a "Family")
    family = f"Family {uuid.uuid4().hex[:6]}"
    other = await new_book(radicale, family)
    connector = await connect(radicale, radicale.url)
    with pytest.raises(ConnectorConfigError) as caught:
        await connector.check()
    message = str(caught.value)
    assert caught.value.key == "addressbook"
    assert "set addressbook to one of" in message
    assert f"'{family}'" in message and other.url.split("/", 3)[3] in message
    by_name = await connect(radicale, radicale.url, addressbook=family.lower())
    await by_name.check()
    assert by_name.book is not None and by_name.book.url == other.url
    missing = await connect(radicale, radicale.url, addressbook="Nope")
    with pytest.raises(ConnectorConfigError, match="no address book 'Nope'"):
        await missing.check()


async def test_a_wrong_password_needs_reauthorisation(
    radicale: DavServer, rbook: Book, connect: Connect
) -> None:
    connector = await connect(radicale, rbook.url, password="not-the-password")
    with pytest.raises(NeedsReauth):
        await connector.check()


async def test_listing_propfind_then_multiget_in_chunks_then_sync_collection(
    server: DavServer, book: Book, connect: Connect, proxy: MakeProxy
) -> None:
    for n in range(25):
        await book.put(
            f"c{n:03d}.vcf", sample_card(f"u{n}", given=f"G{n}", email=f"p{n}@x.example")
        )
    front = await proxy(server)
    connector = await connect(server, front.book_url(book))
    connector.multiget_chunk = 10  # 100 by default
    records = await listing(connector)
    assert len(records) == 25
    assert records["c007.vcf"].data["email"] == "p7@x.example"
    assert all(r.version for r in records.values())  # ETags, so syncd skips unchanged ones
    # one PROPFIND for discovery, one depth-1 PROPFIND, three multigets of at most 10
    assert front.counts.by_method == {"PROPFIND": 2, "REPORT": 3}

    front.counts.reset()
    again = await listing(connector)
    assert again.keys() == records.keys()
    assert front.counts.by_method == {"REPORT": 1}  # sync-collection: nothing changed

    await book.put("c001.vcf", sample_card("u1", given="Changed", email="p1@x.example"), None)
    await book.delete("c002.vcf")
    await book.put("new.vcf", sample_card("un", given="New", email="new@x.example"))
    front.counts.reset()
    third = await listing(connector)
    assert front.counts.by_method == {"REPORT": 2}  # the changes, then their two bodies
    assert third["c001.vcf"].data["given"] == "Changed"
    assert "c002.vcf" not in third and third["new.vcf"].data["given"] == "New"
    assert len(third) == 25


async def test_the_mirror_survives_a_new_connector_and_a_restart(
    server: DavServer, book: Book, connect: Connect, proxy: MakeProxy
) -> None:
    await book.put("a.vcf", sample_card("ua", given="A"))
    front = await proxy(server)
    first = await connect(server, front.book_url(book))
    await listing(first)
    await first.close()
    front.counts.reset()
    second = await connect(server, front.book_url(book))
    records = await listing(second)
    assert set(records) == {"a.vcf"}
    assert front.counts.by_method == {"PROPFIND": 1, "REPORT": 1}  # discovery, sync-collection


async def test_a_run_from_a_current_sync_token_reads_no_card_from_the_mirror(
    server: DavServer, book: Book, connect: Connect
) -> None:
    """The engine's cursor is the sync-token: when nothing changed, the mirror's cards (10,000
    bodies in a large address book) are never read from its file; when one did, they are."""
    for n in range(3):
        await book.put(f"c{n}.vcf", sample_card(f"u{n}", given=f"G{n}"))
    first = await connect(server, book.url)
    await listing(first)
    cursor = first.listing_cursor()
    assert cursor
    await first.close()

    async def since(connector: CardDavConnector, token: str) -> list[str]:
        return [r.id async for page in connector.list_records(token) for r in page]

    second = await connect(server, book.url)
    assert await since(second, cursor) == []
    assert second.mirror is not None and second.mirror._entries is None  # never loaded
    assert second.listing_cursor() == cursor
    await second.close()

    await book.put("c1.vcf", sample_card("u1", given="Changed"))
    third = await connect(server, book.url)
    assert await since(third, cursor) == ["c1.vcf"]
    assert third.mirror is not None and set(third.mirror.entries) == {"c0.vcf", "c1.vcf", "c2.vcf"}


async def test_an_invalid_sync_token_falls_back_to_a_listing_in_full(
    server: DavServer, book: Book, connect: Connect, tmp_path: Path, proxy: MakeProxy
) -> None:
    await book.put("a.vcf", sample_card("ua", given="A"))
    front = await proxy(server)
    connector = await connect(server, front.book_url(book))
    await listing(connector)
    await connector.close()
    mirror = tmp_path / "state" / "carddav" / "t-a.sqlite"
    with sqlite3.connect(mirror) as db:
        db.execute(
            "UPDATE meta SET value = ? WHERE key = 'sync_token'",
            (book.url + "sync/not-a-token-the-server-knows",),
        )
    await book.put("b.vcf", sample_card("ub", given="B"))
    front.counts.reset()
    again = await connect(server, front.book_url(book))
    again_records = await listing(again)
    assert set(again_records) == {"a.vcf", "b.vcf"}
    assert again.stats["full_listings"] == 1
    assert front.counts.by_method["PROPFIND"] == 2  # discovery, then the listing in full
    assert front.counts.by_method["REPORT"] == 2  # the refused sync-collection, one multiget


async def test_without_sync_collection_etags_are_compared(
    radicale: DavServer, rbook: Book, connect: Connect, proxy: MakeProxy
) -> None:
    for n in range(5):
        await rbook.put(f"c{n}.vcf", sample_card(f"u{n}", given=f"G{n}"))
    front = await proxy(radicale, without_sync=True, strip_sync_token=True)
    connector = await connect(radicale, front.book_url(rbook))
    assert "ETag comparison" in await connector.check()
    assert len(await listing(connector)) == 5
    front.counts.reset()
    assert len(await listing(connector)) == 5
    assert front.counts.by_method == {"PROPFIND": 1}  # the ETags; no body fetched again
    await rbook.put("c3.vcf", sample_card("u3", given="Edited"))
    await rbook.delete("c4.vcf")
    front.counts.reset()
    records = await listing(connector)
    assert front.counts.by_method == {"PROPFIND": 1, "REPORT": 1}  # the one changed body
    assert records["c3.vcf"].data["given"] == "Edited" and "c4.vcf" not in records


async def test_a_server_that_refuses_the_sync_report_is_compared_by_etag(
    radicale: DavServer, rbook: Book, connect: Connect, proxy: MakeProxy
) -> None:
    """A token from PROPFIND, then a sync-collection REPORT refused (403 supported-report):
    the connector falls back to ETags and stops asking."""
    await rbook.put("c.vcf", sample_card("uc", given="C"))
    front = await proxy(radicale, without_sync=True)
    connector = await connect(radicale, front.book_url(rbook))
    await listing(connector)
    await rbook.put("c.vcf", sample_card("uc", given="Changed"))
    records = await listing(connector)
    assert records["c.vcf"].data["given"] == "Changed"
    front.counts.reset()
    await listing(connector)
    assert front.counts.by_method == {"PROPFIND": 1}


async def test_a_bad_card_is_reported_for_itself_and_the_rest_is_listed(
    radicale: DavServer, rbook: Book, connect: Connect, proxy: MakeProxy
) -> None:
    """A card the server hands out broken (the proxy cuts its END line): that record carries
    the parse error, the others are read."""
    await rbook.put("good.vcf", sample_card("ug", given="Good"))
    await rbook.put("bad.vcf", sample_card("ub", given="Broken-on-the-way"))
    front = await proxy(
        radicale,
        mangle=lambda body: body.replace(
            b"FN:Broken-on-the-way\r\n", b"FN:Broken-on-the-way\r\nNOT A CONTENT LINE\r\n"
        ),
    )
    connector = await connect(radicale, front.book_url(rbook))
    records = await listing(connector)
    assert records["good.vcf"].error is None and records["good.vcf"].data["given"] == "Good"
    assert records["bad.vcf"].error is not None and "bad vCard" in records["bad.vcf"].error
