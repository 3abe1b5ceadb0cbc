"""Creating, updating and archiving through the sandbox: batches, per-record refusals, idempotency
keys, the duplicate-Name rule, and what is never sent."""

from __future__ import annotations

import json
from typing import Any

from syncd.connector import RecordWrite


def by_name(contacts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["Name"]: c for c in contacts}


async def test_creates_go_in_batches_of_fifty_with_summarize_errors_off(xero: Any) -> None:
    env = await xero()
    connector = await env.authorized()
    assert connector.capabilities.create_batch_size == 50
    writes = [
        RecordWrite(f"k{i}", {"Name": f"Person {i}", "EmailAddress": f"p{i}@example.com"})
        for i in range(50)
    ]
    results = await connector.create(writes)
    assert [r.key for r in results] == [w.key for w in writes]
    assert all(r.ok and r.id for r in results)
    assert len(await env.contacts()) == 50
    assert (await env.calls())["PUT /api.xro/2.0/Contacts"] == 1
    [put] = [e for e in env.exchanges if e.method == "PUT"]
    assert ("summarizeErrors", "false") in put.query
    assert put.headers["Idempotency-Key"].startswith("syncd-create-")


async def test_one_refused_record_does_not_block_the_rest(xero: Any) -> None:
    env = await xero()
    connector = await env.authorized()
    results = await connector.create(
        [
            RecordWrite("ok1", {"Name": "Good One", "EmailAddress": "good@example.com"}),
            RecordWrite("bad-email", {"Name": "Bad Email", "EmailAddress": "not an email"}),
            RecordWrite("too-long", {"Name": "L" * 300}),
            RecordWrite("umlaut", {"Name": "Umlaut", "EmailAddress": "jürgen@example.com"}),
            RecordWrite("ok2", {"Name": "Good Two"}),
        ]
    )
    outcome = {r.key: r for r in results}
    assert outcome["ok1"].ok and outcome["ok2"].ok
    assert outcome["bad-email"].error == "Email address must be valid."
    assert outcome["umlaut"].error == "Email address must be valid."
    # refused before sending: the spec forbids the request (the sandbox would say so too)
    assert outcome["too-long"].error == "Name is longer than Xero's 255 characters"
    assert set(by_name(await env.contacts())) == {"Good One", "Good Two"}


async def test_a_missing_name_is_derived_from_the_person(xero: Any) -> None:
    env = await xero()
    connector = await env.authorized()
    results = await connector.create(
        [
            RecordWrite("k1", {"FirstName": "Aoife", "LastName": "Ní Bhriain"}),
            RecordWrite("k2", {"EmailAddress": "solo@example.com"}),
            RecordWrite("k3", {"Name": None, "AccountNumber": "123"}),
        ]
    )
    assert all(r.ok for r in results)
    names = set(by_name(await env.contacts()))
    assert names == {"Aoife Ní Bhriain", "solo@example.com", "Contact k3"}


async def test_read_only_and_unknown_fields_are_never_sent(xero: Any) -> None:
    env = await xero()
    connector = await env.authorized()
    [created] = await connector.create(
        [
            RecordWrite(
                "k1",
                {
                    "Name": "Read Only",
                    "Website": "https://ignored.example",
                    "IsCustomer": "true",
                    "ContactStatus": "ARCHIVED",
                    "ContactGroups": frozenset({"VIP"}),
                    "custom.nonsense": "x",
                },
            )
        ]
    )
    await connector.update([RecordWrite("u1", {"Website": "https://x.example"}, created.id)])
    state = await env.state()
    assert state["organisations"][0]["read_only_fields_received"] == 0
    sent = [json.loads(e.body) for e in env.exchanges if e.method in ("PUT", "POST")]
    assert sent == [{"Contacts": [{"Name": "Read Only"}]}]  # the update had nothing to send
    [stored] = await env.contacts()
    assert stored["ContactStatus"] == "ACTIVE"


async def test_updates_change_only_what_they_carry(xero: Any) -> None:
    env = await xero()
    [contact] = await env.add(
        {
            "Name": "Kept Name",
            "FirstName": "Kept",
            "EmailAddress": "kept@example.com",
            "Phones": [
                {"PhoneType": "DEFAULT", "PhoneNumber": "7946 0000", "PhoneAreaCode": "20",
                 "PhoneCountryCode": "44"},
                {"PhoneType": "MOBILE", "PhoneNumber": "07700 900123"},
            ],
            "Addresses": [
                {"AddressType": "STREET", "AddressLine1": "1 High St", "City": "London",
                 "PostalCode": "EC1A 1BB"}
            ],
        }
    )  # fmt: skip
    connector = await env.authorized()
    [[record]] = [page async for page in connector.list_records(None)]
    results = await connector.update(
        [
            RecordWrite(
                "u1",
                {
                    "Phones.MOBILE": "+447700900999",
                    "Addresses.STREET.City": "Manchester",
                    "FirstName": None,
                },
                record.id,
            )
        ]
    )
    assert results[0].ok and results[0].id == contact["ContactID"]
    [stored] = await env.contacts()
    phones = {p["PhoneType"]: p for p in stored["Phones"]}
    assert phones["MOBILE"]["PhoneNumber"] == "+447700900999"
    assert phones["DEFAULT"]["PhoneNumber"] == "7946 0000"
    assert phones["DEFAULT"]["PhoneAreaCode"] == "20"
    street = next(a for a in stored["Addresses"] if a["AddressType"] == "STREET")
    assert (street["AddressLine1"], street["City"], street["PostalCode"]) == (
        "1 High St",
        "Manchester",
        "EC1A 1BB",
    )
    assert stored["FirstName"] == "" and stored["Name"] == "Kept Name"
    assert stored["EmailAddress"] == "kept@example.com"


async def test_an_update_to_a_taken_name_is_refused_with_xeros_reason(xero: Any) -> None:
    env = await xero()
    first, second = await env.add({"Name": "Alpha"}, {"Name": "Beta"})
    connector = await env.authorized()
    results = await connector.update(
        [
            RecordWrite("u1", {"Name": "Alpha"}, second["ContactID"]),
            RecordWrite("u2", {"FirstName": "Fine"}, first["ContactID"]),
            RecordWrite("u3", {"FirstName": "Ghost"}, "5cc8cf28-567e-4d43-b287-687cfcaec47c"),
        ]
    )
    outcome = {r.key: r for r in results}
    assert "already assigned to another contact" in (outcome["u1"].error or "")
    assert outcome["u2"].ok
    assert outcome["u3"].error == "The contact could not be found."


async def test_archive_sets_contact_status(xero: Any) -> None:
    env = await xero()
    one, _two = await env.add({"Name": "One"}, {"Name": "Two"})
    connector = await env.authorized()
    results = await connector.archive([one["ContactID"]])
    assert results[0].ok and results[0].key == one["ContactID"]
    status = {c["Name"]: c["ContactStatus"] for c in await env.contacts()}
    assert status == {"One": "ARCHIVED", "Two": "ACTIVE"}
    [post] = [json.loads(e.body) for e in env.exchanges if e.method == "POST"]
    assert post == {"Contacts": [{"ContactID": one["ContactID"], "ContactStatus": "ARCHIVED"}]}


async def test_a_retried_batch_reuses_its_idempotency_key(xero: Any) -> None:
    env = await xero()
    connector = await env.authorized()
    writes = [RecordWrite("stable-1", {"Name": "Once Only", "EmailAddress": "once@example.com"})]
    first = await connector.create(writes)
    again = await connector.create(writes)  # a retry after a lost answer
    assert first == again
    assert len(await env.contacts()) == 1
    assert (await env.state())["idempotent_replays"] == 1
    keys = {e.headers["Idempotency-Key"] for e in env.exchanges if e.method == "PUT"}
    assert len(keys) == 1 and len(keys.pop()) <= 128


async def test_duplicate_name_with_the_same_email_links_to_the_existing_contact(
    xero: Any,
) -> None:
    env = await xero()
    [existing] = await env.add({"Name": "Jane Smith", "EmailAddress": "JANE@x.com"})
    connector = await env.authorized()
    [result] = await connector.create(
        [RecordWrite("k1", {"Name": "Jane Smith", "EmailAddress": "jane@x.com", "LastName": "S"})]
    )
    assert result.ok and result.id == existing["ContactID"]
    [stored] = await env.contacts()
    assert stored["LastName"] == "S"  # the create's values were applied to the linked contact


async def test_duplicate_name_with_another_email_gets_a_derived_name(xero: Any) -> None:
    env = await xero()
    [existing] = await env.add({"Name": "Jane Smith", "EmailAddress": "other@x.com"})
    connector = await env.authorized()
    writes = [
        RecordWrite("k1", {"Name": "Jane Smith", "EmailAddress": "jane@x.com"}),
        RecordWrite("k2", {"Name": "John Doe", "EmailAddress": "john@x.com"}),
        RecordWrite("k3", {"Name": "Jane Smith"}),
    ]
    results = await connector.create(writes)
    assert all(r.ok for r in results)
    contacts = by_name(await env.contacts())
    assert contacts["Jane Smith"]["ContactID"] == existing["ContactID"]
    assert contacts["Jane Smith (jane@x.com)"]["ContactID"] == results[0].id
    assert contacts["Jane Smith (k3)"]["ContactID"] == results[2].id
    assert contacts["John Doe"]["ContactID"] == results[1].id

    # the same writes again (a rerun after the idempotency cache expired) create nothing new:
    # the derived names are deterministic and their holders share the email
    env.accounting.replies.clear()
    again = await connector.create(writes[:1])
    assert again[0].id == results[0].id
    assert len(await env.contacts()) == 4


async def test_a_partial_400_answer_is_matched_and_the_rest_resent(xero: Any) -> None:
    """The other summarizeErrors behaviour a Xero maintainer described: 400 with only the
    refused elements, the valid ones saved."""
    env = await xero(partial_400=True)
    connector = await env.authorized()
    results = await connector.create(
        [
            RecordWrite("good", {"Name": "Good", "EmailAddress": "good@example.com"}),
            RecordWrite("bad", {"Name": "Bad", "EmailAddress": "nope"}),
        ]
    )
    outcome = {r.key: r for r in results}
    assert outcome["bad"].error == "Email address must be valid."
    assert outcome["good"].ok and outcome["good"].id
    assert set(by_name(await env.contacts())) == {"Good"}


async def test_batch_size_setting_sets_the_capabilities(xero: Any) -> None:
    env = await xero()
    connector = env.connector(batch_size=20)
    assert connector.capabilities.create_batch_size == 20
    assert connector.capabilities.update_batch_size == 20
