"""The contract with Xero's OpenAPI spec.

Every test that starts a sandbox already validates each request the connector sent and each
answer the sandbox gave (see conftest.py). This file runs one session through every operation
the connector uses, checks that the validation really covered them, and shows that the validator
catches what the spec forbids (so that a silent validator cannot pass the other tests).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from syncd.connector import RecordWrite


async def test_every_operation_validates_against_the_spec(xero: Any) -> None:
    env = await xero(seed=11, count=120)
    await env.add({"Name": "Taken Name", "EmailAddress": "someone@example.com"})
    connector = await env.authorized(page_size=50)
    records = [r for page in [p async for p in connector.list_records(None)] for r in page]
    watermark = max(r.updated_at for r in records if r.updated_at)
    [p async for p in connector.list_records(connector.make_cursor(watermark))]
    await connector.lookup_by_email(["someone@example.com", 'odd"quote@example.com'])
    created = await connector.create(
        [
            RecordWrite("c1", {"Name": "New Person", "EmailAddress": "new@example.com",
                               "Phones.MOBILE": "+447700900123",
                               "Addresses.STREET.AddressLines": "1 A St\n2nd floor"}),
            RecordWrite("c2", {"Name": "Taken Name", "EmailAddress": "other@example.com"}),
            RecordWrite("c3", {"Name": "Bad Mail", "EmailAddress": "bad@"}),
        ]
    )  # fmt: skip
    assert [r.ok for r in created] == [True, True, False]
    await connector.update([RecordWrite("u1", {"FirstName": "Changed"}, records[0].id)])
    await connector.archive([records[1].id])
    await connector.check()

    seen = {(e.method, e.path) for e in env.exchanges}
    assert {
        ("GET", "/Connections"),
        ("GET", "/api.xro/2.0/Contacts"),
        ("PUT", "/api.xro/2.0/Contacts"),
        ("POST", "/api.xro/2.0/Contacts"),
    } <= seen
    assert any("If-Modified-Since" in e.headers for e in env.exchanges)
    assert any(e.status == 200 and e.method == "PUT" for e in env.exchanges)
    assert env.contract_problems() == []


async def test_the_validator_catches_what_the_spec_forbids(xero: Any) -> None:
    env = await xero(seed=1, count=5)
    connector = await env.authorized()
    await connector.create([RecordWrite("k", {"Name": "Fine"})])
    put = next(e for e in env.exchanges if e.method == "PUT")
    assert env.contract_problems() == []

    read_only = json.dumps({"Contacts": [{"Name": "X", "UpdatedDateUTC": "/Date(1)/"}]})
    no_tenant = {k: v for k, v in put.headers.items() if k.lower() != "xero-tenant-id"}
    bad_answer = json.dumps({"Contacts": [{"ContactID": "not-a-uuid", "Name": 7}]})
    forged = [
        replace(put, body=read_only.encode()),
        replace(put, headers=no_tenant),
        replace(put, response_body=bad_answer.encode()),
    ]
    env.exchanges[:] = forged
    problems = env.contract_problems()
    env.exchanges.clear()  # keep the fixture's own check to the real traffic
    assert len(problems) == 3
    assert "read-only" in problems[0]
    assert "xero-tenant-id" in problems[1]
    assert problems[2].startswith("response 200")
