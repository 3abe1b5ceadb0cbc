"""Listing, incremental listing and lookups against the sandbox over HTTP."""

from __future__ import annotations

from collections import Counter
from typing import Any

from syncd_salesflare.sandbox_store import SalesflareState

from syncd.connector import RecordWrite


async def list_all(connector: Any, cursor: str | None = None) -> list[Any]:
    records = []
    async for page in connector.list_records(cursor):
        records.extend(page)
    return records


def contact_gets(sandbox: Any) -> list[dict[str, str]]:
    return [dict(q) for m, p, q, _ in sandbox.requests if m == "GET" and p == "/contacts"]


def add_contacts(state: SalesflareState, count: int, firstname: str = "Late") -> list[int]:
    ids = []
    for n in range(count):
        values = state.validate_contact(
            {"firstname": firstname, "lastname": f"Comer {n}", "email": f"late{n}@new.test"},
            [],
            creating=True,
        )
        ids.append(state.create_contact(values, force=True))
    return ids


async def test_lists_every_contact_once_across_page_boundaries(start_sandbox, make_connector):
    sandbox = await start_sandbox(seed=1, count=137)
    connector = await make_connector(sandbox, page_size=10)

    records = await list_all(connector)

    assert Counter(r.id for r in records) == Counter(str(i) for i in sandbox.state.contacts)
    archived = {str(i) for i, c in sandbox.state.contacts.items() if c["archived"]}
    assert archived and {r.id for r in records if r.archived} == archived
    gets = contact_gets(sandbox)
    assert all(q["includeArchived"] == "true" and q["order_by"] == "id" for q in gets)
    # 137 records, 10 per page overlapping by one: 1 + ceil(127 / 9) = 16 pages, the last short
    assert len(gets) == 16
    assert [int(q["offset"]) for q in gets[:3]] == [0, 9, 18]


async def test_list_of_exact_multiple_of_page_size_ends_on_empty_overlap(
    start_sandbox, make_connector
):
    sandbox = await start_sandbox(seed=2, count=40)
    connector = await make_connector(sandbox, page_size=10)
    records = await list_all(connector)
    assert sorted(int(r.id) for r in records) == sorted(sandbox.state.contacts)


async def test_records_carry_mapped_fields_and_modification_date(start_sandbox, make_connector):
    sandbox = await start_sandbox(seed=3, count=80)
    connector = await make_connector(sandbox, page_size=500)
    records = {r.id: r for r in await list_all(connector)}
    for contact_id, contact in sandbox.state.contacts.items():
        record = records[str(contact_id)]
        shown = sandbox.state.render_contact(contact)
        assert record.data["email"] == contact["email"]
        assert record.data["firstname"] == contact["firstname"]
        assert record.data["account.name"] == (shown["account"] or {}).get("name")
        assert record.data["position.role"] == shown["role"]
        assert record.data["tags"] == tuple(sorted(t["name"] for t in contact["tags"]))
        assert record.updated_at is not None
        assert record.updated_at.isoformat().startswith(contact["modification_date"][:19])
        if shown["addresses"]:
            assert record.data["address.city"] == shown["addresses"][0]["city"]
        if contact["custom"] and "lifetime_value" in contact["custom"]:
            assert record.data["custom.lifetime_value"] == str(contact["custom"]["lifetime_value"])
    assert any(r.data["email"] is None for r in records.values())  # seeded without email


async def test_paging_neither_skips_nor_repeats_when_contacts_are_deleted_and_added(
    start_sandbox, make_connector
):
    sandbox = await start_sandbox(seed=4, count=60)
    state = sandbox.state
    connector = await make_connector(sandbox, page_size=10)
    original = sorted(state.contacts)
    listed: list[str] = []
    deleted: set[int] = set()
    added: list[int] = []
    pages = 0
    async for page in connector.list_records(None):
        listed.extend(r.id for r in page)
        pages += 1
        if pages in (1, 3):
            # delete three contacts already read: everything after them shifts left by three,
            # so a plain offset walk would skip three unread contacts
            victims = [int(i) for i in listed[-5:-2]]
            for victim in victims:
                del state.contacts[victim]
            deleted.update(victims)
        if pages == 2:
            added = add_contacts(state, 4)  # new contacts: higher ids, so at the end

    assert len(listed) == len(set(listed)), "a contact was listed twice"
    survivors = {str(i) for i in original if i not in deleted}
    assert survivors <= set(listed), f"skipped: {sorted(survivors - set(listed))}"
    assert {str(i) for i in added} <= set(listed)


async def test_paging_recovers_when_the_overlapping_contact_itself_is_deleted(
    start_sandbox, make_connector
):
    sandbox = await start_sandbox(seed=5, count=35)
    state = sandbox.state
    connector = await make_connector(sandbox, page_size=10)
    ids = sorted(state.contacts)
    requests = 0

    def after_page(current: SalesflareState) -> None:
        nonlocal requests
        requests += 1
        if requests == 1:
            # the last contact of page one (the next page's overlap) and two before it go away
            for victim in ids[7:10]:
                del current.contacts[victim]

    state.after_page = after_page
    listed = [r.id for r in await list_all(connector)]
    assert len(listed) == len(set(listed))
    assert {str(i) for i in ids[10:]} <= set(listed)


async def test_paging_without_an_id_order_still_dedupes_and_skips_nothing(
    start_sandbox, make_connector
):
    # A server that refuses order_by=id and creation_date: the connector falls back to the
    # server's own order (by name here), where new contacts land before the read position.
    sandbox = await start_sandbox(seed=6, count=50, sort_keys=["name", "email"])
    state = sandbox.state
    connector = await make_connector(sandbox, page_size=10)
    original = sorted(state.contacts)
    listed: list[str] = []
    deleted: set[int] = set()
    pages = 0
    async for page in connector.list_records(None):
        listed.extend(r.id for r in page)
        pages += 1
        if pages == 1:
            add_contacts(state, 5, firstname="Aaaron")  # sort first: the rest shift right
        if pages == 2:
            victims = [int(i) for i in listed[:4]]
            for victim in victims:
                del state.contacts[victim]
            deleted.update(victims)

    assert len(listed) == len(set(listed))
    assert {str(i) for i in original if i not in deleted} <= set(listed)
    orders = [q.get("order_by") for q in contact_gets(sandbox)]
    assert orders[:2] == ["id", "creation_date"] and orders[-1] is None


async def test_a_silent_cap_on_the_page_size_is_detected(start_sandbox, make_connector):
    sandbox = await start_sandbox(seed=7, count=45, page_cap=7)
    connector = await make_connector(sandbox, page_size=20)
    listed = [r.id for r in await list_all(connector)]
    assert sorted(int(i) for i in listed) == sorted(sandbox.state.contacts)
    limits = [q["limit"] for q in contact_gets(sandbox)]
    assert limits[:2] == ["20", "20"] and set(limits[2:]) == {"7"}


async def test_small_list_costs_one_extra_request_only(start_sandbox, make_connector):
    sandbox = await start_sandbox(seed=8, count=5)
    connector = await make_connector(sandbox, page_size=20)
    assert len(await list_all(connector)) == 5
    assert len(contact_gets(sandbox)) == 2


async def test_incremental_listing_returns_only_what_changed_since_the_cursor(
    start_sandbox, make_connector
):
    sandbox = await start_sandbox(seed=9, count=40)
    connector = await make_connector(sandbox, page_size=15)
    first = await list_all(connector)
    watermark = max(r.updated_at for r in first if r.updated_at)
    cursor = connector.make_cursor(watermark)
    assert cursor.endswith("Z") and "." in cursor  # Salesflare's format, with milliseconds

    live = [r for r in first if not r.archived]
    changed = await connector.update(
        [
            RecordWrite("k1", {"lastname": "Changed"}, id=live[0].id),
            RecordWrite("k2", {"tags": ("vip",)}, id=live[1].id),
        ]
    )
    assert all(result.ok for result in changed)
    archived = await connector.archive([live[2].id])
    assert archived[0].ok

    since = await list_all(connector, cursor)
    assert {r.id for r in since} == {live[0].id, live[1].id, live[2].id}
    assert {r.id: r.archived for r in since}[live[2].id] is True
    assert contact_gets(sandbox)[-1]["modification_after"] == cursor


async def test_lookup_by_email_is_exact_and_includes_archived(start_sandbox, make_connector):
    sandbox = await start_sandbox(seed=10, count=10)
    state = sandbox.state
    connector = await make_connector(sandbox)
    index = state.email_index()
    email, contact_id = next(iter(index.items()))
    state.contacts[contact_id]["archived"] = True
    twin = add_contacts(state, 1)[0]
    state.contacts[twin]["email"] = email  # a second contact with that email (force=true)

    found = await connector.lookup_by_email([email.upper(), "nobody@nowhere.test"])
    assert sorted(r.id for r in found) == sorted([str(contact_id), str(twin)])
    assert {r.id: r.archived for r in found}[str(contact_id)] is True
    assert await connector.lookup_by_email([email.split("@")[0]]) == []
