"""Listing, incremental listing and lookups, against the emulator over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from syncd_woodpecker.connector import WoodpeckerConnector

from syncd.connector import RecordWrite, RemoteRecord


async def collect(connector: WoodpeckerConnector, cursor: str | None = None) -> list[RemoteRecord]:
    records: list[RemoteRecord] = []
    async for page in connector.list_records(cursor):
        records.extend(page)
    return records


async def test_woodpecker_paging_across_page_boundaries(start_sandbox: Any, connect: Any) -> None:
    sandbox = await start_sandbox(seed=7, count=2_345)
    connector = await connect(sandbox)

    records = await collect(connector)

    assert [int(r.id) for r in records] == sorted(sandbox.store.prospects)
    assert len({r.id for r in records}) == 2_345
    # three pages of up to 1,000; the short third page ends the listing without a 204 call
    assert (await sandbox.calls())["GET /rest/v1/prospects"] == 3


async def test_woodpecker_full_last_page_needs_no_extra_call(
    start_sandbox: Any, connect: Any
) -> None:
    sandbox = await start_sandbox(seed=7, count=20)
    connector = await connect(sandbox, per_page=5)

    records = await collect(connector)

    assert len(records) == 20
    # X-Total-Count says the fourth full page was the last one
    assert (await sandbox.calls())["GET /rest/v1/prospects"] == 4


async def test_woodpecker_empty_account_lists_nothing_on_204(
    start_sandbox: Any, connect: Any
) -> None:
    sandbox = await start_sandbox()
    connector = await connect(sandbox)

    assert await collect(connector) == []
    assert "no prospects" in await connector.check()


async def test_woodpecker_listing_survives_a_deletion_between_pages(
    start_sandbox: Any, connect: Any
) -> None:
    sandbox = await start_sandbox(seed=3, count=30)
    connector = await connect(sandbox, per_page=10)
    ids = sorted(sandbox.store.prospects)

    seen: list[str] = []
    pages = connector.list_records(None)
    seen.extend(r.id for r in await anext(pages))
    # someone deletes a prospect of the first page: every later one moves up by one place
    sandbox.store.delete([ids[2]])
    async for page in pages:
        seen.extend(r.id for r in page)

    assert len(seen) == len(set(seen))
    live = {str(i) for i in sandbox.store.prospects}
    assert live <= set(seen), "a live prospect was missed (the engine could take it for deleted)"


async def test_woodpecker_falls_back_to_500_per_page(start_sandbox: Any, connect: Any) -> None:
    sandbox = await start_sandbox(seed=5, count=1_200, per_page_limit=500)
    connector = await connect(sandbox)

    records = await collect(connector)

    assert len({r.id for r in records}) == 1_200
    assert connector.per_page == 500


async def test_woodpecker_fields_and_offset_timestamps(start_sandbox: Any, connect: Any) -> None:
    sandbox = await start_sandbox(utc_offset="+0200")
    when = datetime(2026, 3, 1, 12, 30, 5, tzinfo=UTC)
    prospect = sandbox.store.add(
        email="Zoe.Mueller@Example.com",
        first_name="Zoë",
        last_name="Müller",
        state="Bayern",
        address="Hauptstraße 1",
        tags="#VC #NEW",
        snippet3="met at SaaStr",
        linkedin_url="https://www.linkedin.com/in/zoe",
        updated=when,
    )
    connector = await connect(sandbox)

    [record] = await collect(connector)

    assert record.id == str(prospect.id)
    assert record.updated_at == when
    assert record.data["email"] == "Zoe.Mueller@Example.com"  # as the app holds it
    assert record.data["first_name"] == "Zoë"
    assert record.data["state"] == "Bayern"
    assert record.data["address"] == "Hauptstraße 1"
    assert record.data["tags"] == ("VC", "NEW")
    assert record.data["snippet3"] == "met at SaaStr"
    assert record.data["linkedin_url"] == "https://www.linkedin.com/in/zoe"
    assert record.data["status"] == "ACTIVE"
    assert record.data["company"] is None


async def test_woodpecker_incremental_listing_uses_diff(start_sandbox: Any, connect: Any) -> None:
    sandbox = await start_sandbox(seed=11, count=60)
    connector = await connect(sandbox)
    everything = await collect(connector)
    watermark = max(r.updated_at for r in everything if r.updated_at)

    sandbox.store.advance(30)  # time passes (no sleeping in tests)
    changed = {str(p.id) for p in sandbox.store.ordered()[5:7]}
    for prospect_id in changed:
        sandbox.store.edit(int(prospect_id), title="Chief Everything Officer")
    [created] = await connector.create([_write("late", email="late.comer@example.com")])
    changed.add(str(created.id))

    listed = await collect(connector, connector.make_cursor(watermark))

    assert connector.diff_supported is True
    ids = {r.id for r in listed}
    assert changed <= ids
    # besides the changes, only prospects from the watermark's own second may come again
    extra = [r for r in listed if r.id not in changed]
    assert all(r.updated_at and r.updated_at >= watermark - timedelta(seconds=1) for r in extra)
    assert len(listed) < len(everything)


async def test_woodpecker_incremental_falls_back_to_full_listing_when_diff_is_refused(
    start_sandbox: Any, connect: Any
) -> None:
    sandbox = await start_sandbox(seed=11, count=40, diff="refused")
    connector = await connect(sandbox)
    cursor = connector.make_cursor(datetime.now(UTC))

    first = await collect(connector, cursor)
    assert len(first) == 40
    assert connector.diff_supported is False
    calls = (await sandbox.calls())["GET /rest/v1/prospects"]
    assert calls == 2  # the refused request, then the full listing

    second = await collect(connector, cursor)
    assert len(second) == 40
    # once refused, the filter is not tried again
    assert (await sandbox.calls())["GET /rest/v1/prospects"] == calls + 1


async def test_woodpecker_incremental_copes_with_an_ignored_diff(
    start_sandbox: Any, connect: Any
) -> None:
    sandbox = await start_sandbox(seed=11, count=25, diff="ignored")
    connector = await connect(sandbox)

    listed = await collect(connector, connector.make_cursor(datetime.now(UTC)))

    assert len(listed) == 25  # a superset of the changes, which is always safe


async def test_woodpecker_lookup_by_email_is_exact_and_case_insensitive(
    start_sandbox: Any, connect: Any
) -> None:
    sandbox = await start_sandbox()
    anna = sandbox.store.add(email="Anna+news@Example.com", first_name="Anna")
    sandbox.store.add(email="joanna+news@example.com", first_name="Joanna")
    connector = await connect(sandbox)

    found = await connector.lookup_by_email(["anna+news@example.com", "nobody@example.com"])

    assert [r.id for r in found] == [str(anna.id)]
    assert (await sandbox.calls())["GET /rest/v1/prospects"] == 2  # one search per email


async def test_woodpecker_lookup_of_many_emails_lists_once(
    start_sandbox: Any, connect: Any
) -> None:
    sandbox = await start_sandbox(seed=2, count=300)
    connector = await connect(sandbox)
    wanted = [p.email.lower() for p in sandbox.store.ordered()[::10]]

    found = await connector.lookup_by_email([*wanted, "missing@example.com"])

    assert {r.data["email"].lower() for r in found if isinstance(r.data["email"], str)} == set(
        wanted
    )
    assert (await sandbox.calls())["GET /rest/v1/prospects"] == 1


def _write(key: str, **data: str) -> RecordWrite:
    return RecordWrite(key=key, data=dict(data))
