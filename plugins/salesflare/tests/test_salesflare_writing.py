"""Creating, updating and archiving against the sandbox over HTTP."""

from __future__ import annotations

import json
from typing import Any

from syncd.connector import RecordWrite


def posts(sandbox: Any) -> list[tuple[dict[str, str], Any]]:
    return [
        (dict(q), json.loads(body))
        for m, p, q, body in sandbox.requests
        if m == "POST" and p == "/contacts"
    ]


def by_email(sandbox: Any, email: str) -> list[dict[str, Any]]:
    return [c for c in sandbox.state.contacts.values() if c["email"] == email]


async def test_creates_are_sent_as_one_array_with_force_false_and_ids_map_back(
    start_sandbox, make_connector
):
    sandbox = await start_sandbox()
    connector = await make_connector(sandbox)
    writes = [
        RecordWrite(f"key-{n}", {"email": f"person{n}@example.test", "firstname": f"P{n}"})
        for n in range(5)
    ]
    results = await connector.create(writes)

    assert [r.key for r in results] == [w.key for w in writes]
    for n, result in enumerate(results):
        assert result.ok
        assert sandbox.state.contacts[int(result.id)]["email"] == f"person{n}@example.test"
    [(query, body)] = posts(sandbox)
    assert query == {"force": "false"}
    assert isinstance(body, list) and len(body) == 5


async def test_a_single_create_gets_an_object_back_and_still_maps(start_sandbox, make_connector):
    sandbox = await start_sandbox()
    connector = await make_connector(sandbox)
    [result] = await connector.create([RecordWrite("only", {"email": " Solo@Example.TEST "})])
    assert result.ok
    contact = sandbox.state.contacts[int(result.id)]
    assert contact["email"] == "solo@example.test"  # Salesflare trims and lower-cases


async def test_force_false_means_a_repeated_create_makes_no_duplicate(
    start_sandbox, make_connector
):
    # What happens when a create is sent again (a retry after a lost answer, or a rerun after
    # kill -9 before the id was committed): with force=false Salesflare answers the existing id.
    sandbox = await start_sandbox()
    connector = await make_connector(sandbox)
    write = RecordWrite("k", {"email": "once@example.test", "firstname": "Once"})
    [first] = await connector.create([write])
    [again] = await connector.create([write])
    assert first.ok and again.ok and again.id == first.id
    assert len(by_email(sandbox, "once@example.test")) == 1


async def test_the_sandbox_duplicates_with_salesflares_default_force_true(start_sandbox):
    import aiohttp

    sandbox = await start_sandbox()
    headers = {"Authorization": "Bearer sandbox-api-key"}
    async with aiohttp.ClientSession() as session:
        for _ in range(2):
            async with session.post(
                f"{sandbox.url}/contacts", json=[{"email": "twice@example.test"}], headers=headers
            ) as response:
                assert response.status == 200
    assert len(by_email(sandbox, "twice@example.test")) == 2


async def test_refused_records_get_salesflares_reason_and_the_rest_are_created(
    start_sandbox, make_connector
):
    sandbox = await start_sandbox()
    connector = await make_connector(sandbox)
    writes = [
        RecordWrite("good-1", {"email": "good1@example.test"}),
        RecordWrite("bad-email", {"email": "not an email", "firstname": "X"}),
        RecordWrite("good-2", {"email": "good2@example.test", "custom.source": "web"}),
        RecordWrite("bad-custom", {"email": "c@example.test", "custom.no_such_field": "1"}),
        RecordWrite("bad-country", {"email": "d@example.test", "address.country": "X" * 60}),
        RecordWrite("good-3", {"email": "good3@example.test", "lastname": "Three"}),
    ]
    results = {r.key: r for r in await connector.create(writes)}

    assert results["bad-email"].error == 'Bad Request: "email" must be a valid email'
    assert results["bad-custom"].error == 'Bad Request: "custom.no_such_field" is not allowed'
    assert results["bad-country"].error == (
        'Bad Request: "address.country" length must be less than or equal to 50 characters long'
    )
    for key in ("good-1", "good-2", "good-3"):
        assert results[key].ok
        assert sandbox.state.contacts[int(results[key].id)]["email"].startswith("good")
    assert len(sandbox.state.contacts) == 3
    assert len(posts(sandbox)) == 4  # one refusal per bad record, then the rest at once


async def test_a_refusal_naming_no_item_is_narrowed_down_by_halving(start_sandbox, make_connector):
    sandbox = await start_sandbox()
    connector = await make_connector(sandbox)
    connector.accounts._ids["ghost ltd"] = 999  # a cached account that has since been deleted
    writes = [RecordWrite(f"ok-{n}", {"email": f"ok{n}@example.test"}) for n in range(3)]
    writes.insert(2, RecordWrite("ghost", {"email": "g@example.test", "account.name": "Ghost Ltd"}))
    results = {r.key: r for r in await connector.create(writes)}
    assert results["ghost"].error == "Not Found: Account not found"
    assert all(results[f"ok-{n}"].ok for n in range(3))


async def test_a_batch_larger_than_salesflare_takes_is_refused_whole(start_sandbox, make_connector):
    sandbox = await start_sandbox(max_batch=3)
    connector = await make_connector(sandbox, create_batch_size=3)
    assert connector.capabilities.create_batch_size == 3
    writes = [RecordWrite(f"k{n}", {"email": f"k{n}@example.test"}) for n in range(3)]
    assert all(r.ok for r in await connector.create(writes))


async def test_company_is_linked_to_an_account_found_by_name_or_created(
    start_sandbox, make_connector
):
    sandbox = await start_sandbox(seed=11, count=5)
    state = sandbox.state
    connector = await make_connector(sandbox)
    acme_ids = sorted(i for i, a in state.accounts.items() if a["name"] == "Acme")
    assert len(acme_ids) == 2  # the seed has two accounts called Acme

    results = await connector.create(
        [
            RecordWrite("a", {"email": "a@example.test", "account.name": "  ACME "}),
            RecordWrite("b", {"email": "b@example.test", "account.name": "Newco"}),
            RecordWrite("c", {"email": "c@example.test", "account.name": "newco"}),
        ]
    )
    contacts = [state.contacts[int(r.id)] for r in results]
    assert contacts[0]["account"] == acme_ids[0]  # the oldest of the same-named accounts
    newco = [i for i, a in state.accounts.items() if a["name"] == "Newco"]
    assert len(newco) == 1 and contacts[1]["account"] == contacts[2]["account"] == newco[0]
    account_calls = [(m, q) for m, p, q, _ in sandbox.requests if p == "/accounts"]
    assert [m for m, _ in account_calls] == ["GET", "GET", "POST"]  # cached per run

    [unlinked] = await connector.update(
        [RecordWrite("u", {"account.name": None}, id=results[0].id)]
    )
    assert unlinked.ok and contacts[0]["account"] is None


async def test_without_create_accounts_a_missing_company_is_that_records_error(
    start_sandbox, make_connector
):
    sandbox = await start_sandbox()
    connector = await make_connector(sandbox, create_accounts=False)
    results = await connector.create(
        [
            RecordWrite("x", {"email": "x@example.test", "account.name": "Nowhere Inc"}),
            RecordWrite("y", {"email": "y@example.test"}),
        ]
    )
    assert (
        results[0].error
        == "no Salesflare account is named 'Nowhere Inc' and create_accounts is off"
    )
    assert results[1].ok and not sandbox.state.accounts


async def test_updates_change_fields_in_place(start_sandbox, make_connector):
    sandbox = await start_sandbox()
    state = sandbox.state
    connector = await make_connector(sandbox)
    [created] = await connector.create(
        [
            RecordWrite(
                "k",
                {
                    "email": "p@example.test",
                    "firstname": "Pat",
                    "position.role": "CTO",
                    "address.city": "Gent",
                    "address.street": "Veldstraat 1",
                    "custom.source": "web",
                    "tags": ("lead",),
                },
            )
        ]
    )
    contact_id = created.id
    results = await connector.update(
        [
            RecordWrite(
                "k",
                {
                    "address.city": "Brugge",
                    "custom.lifetime_value": "1200",
                    "position.role": "CEO",
                    "tags": ("customer", "vip"),
                    "phone_number": "+32 9 123 45 67",
                    "name": "ignored: read-only",
                },
                id=contact_id,
            )
        ]
    )
    assert results[0].ok and results[0].id == contact_id
    shown = state.render_contact(state.contacts[int(contact_id)])
    assert [(a["street"], a["city"]) for a in shown["addresses"]] == [("Veldstraat 1", "Brugge")]
    assert shown["custom"] == {"source": "web", "lifetime_value": 1200}
    assert shown["role"] == "CEO" and len(shown["positions"]) == 1
    assert sorted(t["name"] for t in shown["tags"]) == ["customer", "vip"]
    assert shown["phone_number"] == "+32 9 123 45 67"
    assert shown["name"] == "Pat"
    put = [json.loads(b) for m, p, _, b in sandbox.requests if m == "PUT"]
    assert "name" not in put[0]

    # a second update in the same run reads the contact again for its new address id
    await connector.update([RecordWrite("k", {"address.city": "Antwerpen"}, id=contact_id)])
    shown = state.render_contact(state.contacts[int(contact_id)])
    assert [a["city"] for a in shown["addresses"]] == ["Antwerpen"]


async def test_clearing_every_address_field_archives_the_address(start_sandbox, make_connector):
    sandbox = await start_sandbox()
    connector = await make_connector(sandbox)
    [created] = await connector.create(
        [RecordWrite("k", {"email": "q@example.test", "address.city": "Gent"})]
    )
    await connector.update([RecordWrite("k", {"address.city": None}, id=created.id)])
    shown = sandbox.state.render_contact(sandbox.state.contacts[int(created.id)])
    assert shown["addresses"] == []


async def test_updating_a_contact_that_is_gone_reports_not_found(start_sandbox, make_connector):
    sandbox = await start_sandbox()
    connector = await make_connector(sandbox)
    [result] = await connector.update([RecordWrite("k", {"firstname": "X"}, id="424242")])
    assert result.error == "Not Found: Not Found" and result.key == "k"
    [result] = await connector.update([RecordWrite("k", {"address.city": "X"}, id="424242")])
    assert result.error == "Not Found: Not Found"


async def test_archive_sets_archived_and_reports_per_id(start_sandbox, make_connector):
    sandbox = await start_sandbox(seed=12, count=3)
    connector = await make_connector(sandbox)
    ids = [str(i) for i in sandbox.state.contacts]
    results = await connector.archive([ids[0], "999"])
    assert results[0].ok and results[0].key == ids[0]
    assert sandbox.state.contacts[int(ids[0])]["archived"] is True
    assert results[1].key == "999" and results[1].error == "Not Found: Not Found"
    bodies = [json.loads(b) for m, p, _, b in sandbox.requests if m == "PUT"]
    assert bodies[0] == {"archived": True}
