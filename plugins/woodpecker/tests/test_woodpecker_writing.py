"""Creates, updates and deletes through add_prospects_list and DELETE, against the emulator."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from syncd_woodpecker.sandbox import DEFAULT_API_KEY

from syncd.connector import RecordWrite


def write(key: str, record_id: str | None = None, **data: Any) -> RecordWrite:
    return RecordWrite(key=key, data=dict(data), id=record_id)


async def test_woodpecker_create_reads_ids_back(start_sandbox: Any, connect: Any) -> None:
    sandbox = await start_sandbox()
    connector = await connect(sandbox)

    results = await connector.create(
        [
            write("k1", email="ada@example.com", first_name="Ada", tags=("customer", "VIP")),
            write("k2", email="Łukasz@Example.pl", first_name="Łukasz", state="Małopolskie"),
        ]
    )

    assert [r.key for r in results] == ["k1", "k2"] and all(r.ok for r in results)
    ada = sandbox.store.by_email("ada@example.com")
    lukasz = sandbox.store.by_email("łukasz@example.pl")
    assert ada is not None and lukasz is not None
    assert [r.id for r in results] == [str(ada.id), str(lukasz.id)]
    assert ada.fields["tags"] == "#VIP #customer"
    assert lukasz.fields["state"] == "Małopolskie"
    assert ada.status == "ACTIVE"
    assert (await sandbox.calls())["POST /rest/v1/add_prospects_list"] == 1


async def test_woodpecker_update_sets_clears_and_leaves_the_rest(
    start_sandbox: Any, connect: Any
) -> None:
    sandbox = await start_sandbox()
    prospect = sandbox.store.add(
        email="kasia@example.com", first_name="Kasia", company="Initech", city="Kraków"
    )
    connector = await connect(sandbox)

    [result] = await connector.update(
        [write("u1", str(prospect.id), first_name="Katarzyna", company=None, tags=("key account",))]
    )

    assert result.ok and result.id == str(prospect.id)
    assert prospect.fields["first_name"] == "Katarzyna"
    assert prospect.fields["company"] == ""  # cleared
    assert prospect.fields["city"] == "Kraków"  # omitted, untouched
    assert prospect.fields["tags"] == "#key_account"  # a space would split the tag
    assert len(sandbox.store.prospects) == 1


async def test_woodpecker_always_sends_update_true(start_sandbox: Any, connect: Any) -> None:
    """Without ``update: true`` Woodpecker silently ignores known emails: never rely on that."""
    sandbox = await start_sandbox()
    existing = sandbox.store.add(email="known@example.com", first_name="Old", title="Intern")
    connector = await connect(sandbox)

    # A create for an email Woodpecker already holds (say, the first attempt landed but its
    # answer was lost): it must bring the prospect up to date, not be silently dropped.
    [created] = await connector.create([write("c1", email="known@example.com", first_name="New")])
    [updated] = await connector.update([write("u1", str(existing.id), title="CTO")])

    assert created.ok and created.id == str(existing.id)
    assert updated.ok
    assert existing.fields["first_name"] == "New" and existing.fields["title"] == "CTO"
    assert len(sandbox.store.prospects) == 1
    assert sandbox.store.add_requests == [True, True]


async def test_woodpecker_sandbox_ignores_known_prospects_without_update_flag(
    start_sandbox: Any,
) -> None:
    """The trap itself, as the emulator reproduces it."""
    sandbox = await start_sandbox()
    existing = sandbox.store.add(email="known@example.com", first_name="Old")
    body = {"prospects": [{"email": "KNOWN@example.com", "first_name": "New"}]}
    async with (
        aiohttp.ClientSession(headers={"x-api-key": DEFAULT_API_KEY}) as session,
        session.post(f"{sandbox.base_url}/v1/add_prospects_list", json=body) as response,
    ):
        answer = await response.json()

    assert response.status == 200
    assert answer["prospects"] == [{"email": "KNOWN@example.com", "id": existing.id}]
    assert existing.fields["first_name"] == "Old"


@pytest.mark.parametrize("batch_errors", ["item", "request"])
async def test_woodpecker_per_record_rejections_leave_the_rest(
    start_sandbox: Any, connect: Any, batch_errors: str
) -> None:
    """A bad prospect is reported with Woodpecker's reason, whether the API refuses only its
    item (the sandbox's default) or the whole request (then the batch is split)."""
    sandbox = await start_sandbox(batch_errors=batch_errors)
    connector = await connect(sandbox)
    writes = [
        write("ok1", email="one@example.com"),
        write("bad-email", email="not an email"),
        write("ok2", email="two@example.com"),
        write("no-email", first_name="Nameless"),
        write("ok3", email="three@example.com", status="REPLIED"),
        write("bad-status", email="four@example.com", status="ASLEEP"),
    ]

    results = {r.key: r for r in await connector.create(writes)}

    assert all(results[k].ok for k in ("ok1", "ok2", "ok3"))
    assert results["bad-email"].error is not None and "E_EMAIL" in results["bad-email"].error
    assert results["no-email"].error == "Woodpecker needs an email for every prospect"
    assert results["bad-status"].error is not None and "status" in results["bad-status"].error
    assert {p.email for p in sandbox.store.prospects.values()} == {
        "one@example.com",
        "two@example.com",
        "three@example.com",
    }
    three = sandbox.store.by_email("three@example.com")
    assert three is not None and three.status == "REPLIED"  # status written: custom mapping


async def test_woodpecker_duplicate_email_in_one_batch_is_refused_by_the_app(
    start_sandbox: Any, connect: Any
) -> None:
    sandbox = await start_sandbox()
    connector = await connect(sandbox)

    results = await connector.create(
        [write("a", email="twin@example.com"), write("b", email="Twin@example.com")]
    )

    assert results[0].ok
    assert results[1].error is not None and "E_DUPLICATE" in results[1].error
    assert len(sandbox.store.prospects) == 1


async def test_woodpecker_never_reactivates_a_blacklisted_prospect(
    start_sandbox: Any, connect: Any
) -> None:
    sandbox = await start_sandbox()
    blocked = {
        status: sandbox.store.add(email=f"{status.lower()}@example.com", status=status)
        for status in ("BLACKLIST", "BOUNCED", "INVALID")
    }
    connector = await connect(sandbox)
    assert connector.field_spec("status") is not None
    assert connector.field_spec("status").canonical is None  # type: ignore[union-attr]

    updates = [write(s, str(p.id), first_name="Again") for s, p in blocked.items()]
    creates = [write(f"c-{s}", email=p.email, last_name="Again") for s, p in blocked.items()]
    results = await connector.update(updates) + await connector.create(creates)

    assert all(r.ok for r in results)
    assert {s: p.status for s, p in blocked.items()} == {s: s for s in blocked}
    assert all(p.fields["first_name"] == "Again" for p in blocked.values())


async def test_woodpecker_refuses_to_change_an_email(start_sandbox: Any, connect: Any) -> None:
    sandbox = await start_sandbox()
    prospect = sandbox.store.add(email="old@example.com")
    connector = await connect(sandbox)

    [result] = await connector.update([write("u", str(prospect.id), email="new@example.com")])

    assert result.error is not None and "cannot change a prospect's email" in result.error
    assert [p.email for p in sandbox.store.prospects.values()] == ["old@example.com"]
    assert "POST /rest/v1/add_prospects_list" not in await sandbox.calls()


async def test_woodpecker_update_of_an_unlisted_prospect_finds_its_email(
    start_sandbox: Any, connect: Any
) -> None:
    sandbox = await start_sandbox()
    first = sandbox.store.add(email="a@example.com")
    second = sandbox.store.add(email="b@example.com")
    connector = await connect(sandbox)  # nothing listed: the connector knows no email yet

    results = await connector.update(
        [
            write("1", str(first.id), title="A"),
            write("2", str(second.id), title="B"),
            write("3", "999999", title="C"),
        ]
    )

    assert [r.ok for r in results] == [True, True, False]
    assert results[2].error is not None and "no prospect with id 999999" in results[2].error
    assert (first.fields["title"], second.fields["title"]) == ("A", "B")
    calls = await sandbox.calls()
    assert calls["GET /rest/v1/prospects"] == 1  # one id=…,… lookup for both


async def test_woodpecker_update_batches_up_to_batch_size(start_sandbox: Any, connect: Any) -> None:
    sandbox = await start_sandbox()
    connector = await connect(sandbox, batch_size=4)

    results = await connector.create([write(str(n), email=f"p{n}@example.com") for n in range(10)])

    assert all(r.ok for r in results) and len({r.id for r in results}) == 10
    assert (await sandbox.calls())["POST /rest/v1/add_prospects_list"] == 3


async def test_woodpecker_delete_only_when_asked(start_sandbox: Any, connect: Any) -> None:
    sandbox = await start_sandbox(seed=4, count=20)
    connector = await connect(sandbox)
    ids = [str(i) for i in sorted(sandbox.store.prospects)[:3]]

    results = await connector.archive([*ids, "424242", "abc"])

    assert [r.ok for r in results] == [True, True, True, True, False]
    assert results[4].key == "abc"
    assert not set(ids) & {str(i) for i in sandbox.store.prospects}
    assert len(sandbox.store.prospects) == 17
    assert connector.capabilities.archive == "delete"


async def test_woodpecker_delete_splits_long_id_lists(start_sandbox: Any, connect: Any) -> None:
    sandbox = await start_sandbox(seed=4, count=1_500)
    connector = await connect(sandbox)
    ids = [str(i) for i in sorted(sandbox.store.prospects)]

    results = await connector.archive(ids)

    assert all(r.ok for r in results)
    assert sandbox.store.prospects == {}
    # each URL stays under the ~4,100-character limit (the sandbox answers 414 otherwise)
    assert (await sandbox.calls())["DELETE /rest/v1/prospects"] >= 2
