"""Listing contacts from the sandbox over HTTP: paging, archives, incremental runs, lookups."""

from __future__ import annotations

import urllib.parse
from datetime import UTC, datetime, timedelta
from typing import Any

from syncd_xero.connector import XeroConnector

from syncd.connector import RemoteRecord


async def listed(connector: XeroConnector, cursor: str | None = None) -> list[list[RemoteRecord]]:
    return [page async for page in connector.list_records(cursor)]


async def test_paging_crosses_page_boundaries_and_sees_every_contact(xero: Any) -> None:
    env = await xero(seed=7, count=250)
    connector = await env.authorized(page_size=100)
    pages = await listed(connector)
    assert [len(page) for page in pages] == [100, 100, 50]
    ids = [record.id for page in pages for record in page]
    assert len(ids) == len(set(ids)) == 250
    assert set(ids) == {c["ContactID"] for c in await env.contacts()}
    # one GET per page, no trailing empty page: the pagination object says when to stop
    assert (await env.calls())["GET /api.xro/2.0/Contacts"] == 3


async def test_archived_contacts_are_listed_as_archived(xero: Any) -> None:
    env = await xero(seed=3, count=200)
    connector = await env.authorized()
    records = [r for page in await listed(connector) for r in page]
    stored = {c["ContactID"]: c["ContactStatus"] for c in await env.contacts()}
    archived = {r.id for r in records if r.archived}
    assert archived and archived == {i for i, s in stored.items() if s == "ARCHIVED"}


async def test_records_carry_xero_fields_flattened(xero: Any) -> None:
    env = await xero()
    [contact] = await env.add(
        {
            "Name": "Zoë Müller",
            "FirstName": "Zoë",
            "LastName": "Müller",
            "EmailAddress": "zoe@example.com",
            "Website": "https://zoe.example",
            "Phones": [
                {"PhoneType": "DEFAULT", "PhoneCountryCode": "44", "PhoneAreaCode": "20",
                 "PhoneNumber": "7946 0000"},
                {"PhoneType": "MOBILE", "PhoneNumber": "07700 900123"},
            ],
            "Addresses": [
                {"AddressType": "STREET", "AddressLine1": "1 High St", "AddressLine2": "Floor 2",
                 "City": "London", "PostalCode": "EC1A 1BB", "Country": "United Kingdom"}
            ],
            "ContactGroups": [{"Name": "VIP", "Status": "ACTIVE"}],
        }
    )  # fmt: skip
    connector = await env.authorized()
    [[record]] = await listed(connector)
    assert record.id == contact["ContactID"]
    assert record.data["Name"] == "Zoë Müller"
    assert record.data["Phones.DEFAULT"] == "+44 20 7946 0000"
    assert record.data["Phones.MOBILE"] == "07700 900123"
    assert record.data["Addresses.STREET.AddressLines"] == "1 High St\nFloor 2"
    assert record.data["Addresses.STREET.City"] == "London"
    assert record.data["Website"] == "https://zoe.example"
    assert record.data["ContactGroups"] == frozenset({"VIP"})
    assert record.updated_at is not None and record.updated_at.tzinfo is UTC


async def test_incremental_listing_returns_only_changes_since_the_cursor(xero: Any) -> None:
    env = await xero(seed=5, count=150)
    connector = await env.authorized()
    everything = [r for page in await listed(connector) for r in page]
    watermark = max(r.updated_at for r in everything if r.updated_at)
    cursor = connector.make_cursor(watermark + timedelta(milliseconds=1))
    assert await listed(connector, cursor) == []  # nothing changed since

    edited = everything[17]
    await env.add({"ContactID": edited.id, "FirstName": "Changed"})
    [new] = await env.add({"Name": "Brand New", "EmailAddress": "new@example.com"})
    changed = [r for page in await listed(connector, cursor) for r in page]
    assert {r.id for r in changed} == {edited.id, new["ContactID"]}
    assert next(r for r in changed if r.id == edited.id).data["FirstName"] == "Changed"


async def test_cursor_is_an_utc_if_modified_since(xero: Any) -> None:
    env = await xero()
    connector = env.connector()
    moment = datetime(2026, 3, 1, 12, 30, 5, 250000, tzinfo=UTC)
    assert connector.make_cursor(moment) == "2026-03-01T12:30:05.250Z"
    naive = datetime(2026, 3, 1, 12, 30, 5)
    assert connector.make_cursor(naive) == "2026-03-01T12:30:05.000Z"


async def test_both_date_styles_parse(xero: Any) -> None:
    env = await xero(seed=2, count=20, msdate_offset=False)
    connector = await env.authorized()
    records = [r for page in await listed(connector) for r in page]
    raw = {c["ContactID"]: c["UpdatedDateUTC"] for c in await env.contacts()}
    assert all("+" not in value for value in raw.values())
    for record in records:
        ms = int(raw[record.id][6:-2])
        assert record.updated_at == datetime.fromtimestamp(ms / 1000, UTC)


async def test_lookup_by_email_ignores_case_and_includes_archives(xero: Any) -> None:
    env = await xero()
    await env.add(
        {"Name": "Jane Smith", "EmailAddress": "Jane.Smith@Example.com"},
        {"Name": "Old Jane", "EmailAddress": "old@example.com", "ContactStatus": "ARCHIVED"},
        {"Name": "Someone Else", "EmailAddress": "else@example.com"},
    )
    connector = await env.authorized()
    found = await connector.lookup_by_email(["jane.smith@example.com", "old@example.com"])
    assert {r.data["Name"] for r in found} == {"Jane Smith", "Old Jane"}
    assert next(r for r in found if r.data["Name"] == "Old Jane").archived
    assert await connector.lookup_by_email(["nobody@example.com"]) == []


async def test_lookup_by_email_batches_many_addresses(xero: Any) -> None:
    env = await xero()
    await env.add(
        *({"Name": f"Person {i}", "EmailAddress": f"person.{i}@example.com"} for i in range(70))
    )
    connector = await env.authorized()
    emails = [f"person.{i}@example.com" for i in range(70)] + ['quote"me@example.com']
    found = await connector.lookup_by_email(emails)
    assert len(found) == 70
    filters = [dict(e.query)["where"] for e in env.exchanges if e.method == "GET" and e.query]
    # as few requests as short query strings allow
    assert 2 <= len(filters) <= 4
    assert all(len(urllib.parse.quote(where)) <= 1500 for where in filters)


async def test_check_reports_the_organisation(xero: Any) -> None:
    env = await xero(seed=1, count=5)
    connector = await env.authorized()
    assert "Demo Company (UK)" in await connector.check()


async def test_reading_by_ids_is_one_get_per_fifty_ids_archived_and_merged_included(
    xero: Any,
) -> None:
    env = await xero(seed=5, count=130)
    connector = await env.authorized(page_size=10)
    stored = await env.contacts()
    wanted = [c["ContactID"] for c in stored[:120]] + ["00000000-0000-4000-8000-00000000dead"]
    survivor = stored[0]["ContactID"]
    [merged] = await env.add(
        {"Name": "Merged Away", "ContactStatus": "ARCHIVED", "MergedToContactID": survivor}
    )
    wanted.append(merged["ContactID"])
    before = (await env.calls()).get("GET /api.xro/2.0/Contacts", 0)
    records = [r async for page in connector.read_records(wanted) for r in page]
    gets = (await env.calls())["GET /api.xro/2.0/Contacts"] - before
    assert gets == 3  # 122 ids: 50 + 50 + 22, each answered in one page whatever page_size says
    by_id = {r.id: r for r in records}
    assert set(by_id) == set(wanted[:120]) | {merged["ContactID"]}  # the unknown id is left out
    archived = {c["ContactID"] for c in stored[:120] if c["ContactStatus"] == "ARCHIVED"}
    assert {r.id for r in records if r.archived} == archived | {merged["ContactID"]}
    assert by_id[merged["ContactID"]].merged_into == survivor
    assert all(r.merged_into is None for r in records if r.id != merged["ContactID"])
