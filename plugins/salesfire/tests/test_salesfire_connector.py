"""The real connector against the Salesfire emulator over HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from syncd_salesfire.connector import SalesfireConnector

from syncd.connector import (
    ConnectorConfigError,
    ConnectorContext,
    NeedsReauth,
    RecordWrite,
    RetryLater,
)
from syncd.http import RetryPolicy
from syncd.sandbox import switches

# the fixtures (conftest.py) give a running emulator (``sandbox``) and ``make_connector``, an
# async factory of opened connectors pointed at it; conftest is not imported (importlib mode)
SECRET = "s3cr3t-list-key"
Sandbox = Any
MakeConnector = Any


def raw_requests(sandbox: Sandbox) -> list[tuple[bytes, str | None, int]]:
    return [
        (base64.b64decode(r["body_base64"]), r["signature"], r["status"])
        for r in sandbox.state.requests
    ]


def writes(count: int, **extra: Any) -> list[RecordWrite]:
    return [
        RecordWrite(key=f"k{n}", data={"email": f"person{n}@example.com", **extra})
        for n in range(count)
    ]


async def test_signature_is_over_the_exact_bytes_sent(
    sandbox: Sandbox, make_connector: MakeConnector
) -> None:
    connector = await make_connector()
    data = {
        "email": "zoe@example.com",
        "mobile_number": "+447700900123",
        "name": "Zoë Ó Súilleabháin",
        "custom.favourite_shop": "Café “Noir”",
    }
    [result] = await connector.create([RecordWrite(key="z", data=data)])
    assert result.ok, result.error
    [(raw, signature, status)] = raw_requests(sandbox)
    assert status == 201
    # the header is the HMAC of the bytes the app received, hex by default ...
    assert signature == hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    # ... and those bytes are the connector's one serialisation: UTF-8, compact, in payload
    # order. A body re-serialised after signing (escaped, spaced or reordered) would differ.
    assert (
        raw
        == (
            '{"email":"zoe@example.com","mobile_number":"+447700900123","types":["MARKETING"],'
            '"channels":["EMAIL","SMS"],"update_existing":false,"attributes":'
            '{"favourite_shop":"Café “Noir”","name":"Zoë Ó Súilleabháin"}}'
        ).encode()
    )
    [customer] = sandbox.customers()
    assert customer.attributes["name"] == "Zoë Ó Súilleabháin"
    assert result.id == "zoe@example.com"


@pytest.mark.parametrize("sandbox_options", [{"secret": SECRET, "signature_encoding": "base64"}])
async def test_base64_signatures_when_the_list_wants_them(
    sandbox: Sandbox, make_connector: MakeConnector
) -> None:
    hex_connector = await make_connector()
    with pytest.raises(NeedsReauth):
        await hex_connector.create(writes(1))
    connector = await make_connector(signature_encoding="base64")
    [result] = await connector.create(writes(1))
    assert result.ok, result.error
    raw, signature, _ = raw_requests(sandbox)[-1]
    digest = hmac.new(SECRET.encode(), raw, hashlib.sha256).digest()
    assert signature == base64.b64encode(digest).decode()


async def test_a_wrong_secret_is_needs_reauth_naming_the_setting(
    sandbox: Sandbox, make_connector: MakeConnector
) -> None:
    connector = await make_connector(secret="an-old-rotated-secret")
    with pytest.raises(NeedsReauth) as caught:
        await connector.create(writes(20))
    assert "signature" in str(caught.value)
    assert "`secret`" in caught.value.fix
    for text in (str(caught.value), caught.value.fix, repr(connector), repr(connector.__dict__)):
        assert "an-old-rotated-secret" not in text
    assert sandbox.customers() == []
    # the first refusal stops the batch: not all twenty are tried against a refused secret
    assert len(sandbox.state.requests) < 20
    with pytest.raises(NeedsReauth):
        await connector.check()


async def test_check_reaches_the_list_without_storing_anything(
    sandbox: Sandbox, make_connector: MakeConnector
) -> None:
    connector = await make_connector()
    assert "signature accepted" in await connector.check()
    assert sandbox.customers() == []


async def test_an_unknown_list_is_a_config_error(make_connector: MakeConnector) -> None:
    connector = await make_connector(list="no-such-list")
    with pytest.raises(ConnectorConfigError) as caught:
        await connector.create(writes(1))
    assert caught.value.key == "list"


async def test_the_full_list_url_can_replace_site_and_list(
    sandbox: Sandbox, make_connector: MakeConnector
) -> None:
    connector = await make_connector(
        site=None, list=None, url=f"{sandbox.url}/client/demo-site/customers/customers"
    )
    [result] = await connector.create(writes(1))
    assert result.ok
    assert len(sandbox.customers("customers")) == 1


async def test_bad_records_fail_alone_and_are_never_sent(
    sandbox: Sandbox, make_connector: MakeConnector
) -> None:
    connector = await make_connector()
    batch = [
        RecordWrite("good1", {"email": "one@example.com", "name": "One"}),
        RecordWrite("nokey", {"name": "No email, no mobile"}),
        RecordWrite("badtype", {"email": "two@example.com", "types": "NEWSLETTER"}),
        RecordWrite("badkey", {"email": "three@example.com", "custom.Favourite-Colour": "red"}),
        RecordWrite("good2", {"mobile_number": "+447700900555", "channels": "SMS"}),
        # passes the documented rules but Salesfire refuses it: its own reason comes back
        RecordWrite("toolong", {"email": "four@example.com", "custom.notes": "x" * 300}),
    ]
    results = await connector.create(batch)
    by_key = {r.key: r for r in results}
    assert [r.key for r in results] == [w.key for w in batch]
    assert by_key["good1"].ok and by_key["good2"].ok
    assert "email or a mobile number is required" in str(by_key["nokey"].error)
    assert "'NEWSLETTER' not one of MARKETING, TRANSACTIONAL" in str(by_key["badtype"].error)
    assert "snake_case" in str(by_key["badkey"].error)
    assert "may not be greater than 255 characters" in str(by_key["toolong"].error)
    # only the two good ones and the one only Salesfire could judge were sent
    sent = [json.loads(raw) for raw, _, _ in raw_requests(sandbox)]
    assert sorted(c.get("email") or c.get("mobile_number") for c in sent) == [
        "+447700900555",
        "four@example.com",
        "one@example.com",
    ]
    stored = {c.email or c.mobile_number: c for c in sandbox.customers()}
    assert set(stored) == {"one@example.com", "+447700900555"}
    assert stored["+447700900555"].channels == ["SMS"]


async def test_an_update_pushes_the_whole_customer(
    sandbox: Sandbox, make_connector: MakeConnector
) -> None:
    connector = await make_connector()
    [created] = await connector.create(
        [
            RecordWrite(
                "c",
                {
                    "email": "ada@example.com",
                    "mobile_number": "+447700900001",
                    "name": "Ada",
                    "types": "TRANSACTIONAL",
                },
            )
        ]
    )
    assert created.id == "ada@example.com"
    # the engine sends only what changed; the customer keeps its email, mobile and the types a
    # rule set, instead of falling back to the defaults
    [updated] = await connector.update([RecordWrite("c", {"name": "Ada Lovelace"}, id=created.id)])
    assert updated.ok and updated.id == "ada@example.com"
    [customer] = sandbox.customers()
    assert customer.attributes == {"name": "Ada Lovelace"}
    assert customer.types == ["TRANSACTIONAL"]
    assert customer.channels == ["EMAIL", "SMS"]
    last = json.loads(raw_requests(sandbox)[-1][0])
    assert last["mobile_number"] == "+447700900001"

    # clearing the mobile number drops the SMS channel on the next push; a cleared attribute is
    # sent as null once, then left out
    [cleared] = await connector.update(
        [RecordWrite("c", {"mobile_number": None, "name": None}, id=created.id)]
    )
    assert cleared.ok
    last = json.loads(raw_requests(sandbox)[-1][0])
    assert last["channels"] == ["EMAIL"] and last["attributes"] == {"name": None}
    await connector.update([RecordWrite("c", {"first_name": "Ada"}, id=created.id)])
    last = json.loads(raw_requests(sandbox)[-1][0])
    assert last["attributes"] == {"first_name": "Ada"} and "mobile_number" not in last


async def test_a_create_leaves_empty_fields_out(
    sandbox: Sandbox, make_connector: MakeConnector
) -> None:
    connector = await make_connector()
    data = {"email": "new@example.com", "mobile_number": None, "name": "New", "date_of_birth": None}
    [result] = await connector.create([RecordWrite("n", data)])
    assert result.ok
    body = json.loads(raw_requests(sandbox)[-1][0])
    assert body["attributes"] == {"name": "New"} and "mobile_number" not in body


async def test_an_update_without_memory_still_identifies_the_customer(
    sandbox: Sandbox, make_connector: MakeConnector
) -> None:
    connector = await make_connector()
    [result] = await connector.update([RecordWrite("u", {"name": "Grace"}, id="grace@example.com")])
    assert result.ok, result.error
    [customer] = sandbox.customers()
    assert customer.email == "grace@example.com"
    assert customer.types == ["MARKETING"]


async def test_update_existing_false_lets_salesfire_skip_known_customers(
    sandbox: Sandbox, make_connector: MakeConnector
) -> None:
    first = await make_connector()
    await first.create([RecordWrite("a", {"email": "a@example.com", "name": "First"})])
    keep = await make_connector(update_existing=False)
    [result] = await keep.create([RecordWrite("a", {"email": "a@example.com", "name": "Second"})])
    assert result.ok
    [customer] = sandbox.customers()
    assert customer.attributes["name"] == "First"


async def test_a_429_storm_is_waited_out_within_the_budget(
    sandbox: Sandbox, make_connector: MakeConnector
) -> None:
    switches(sandbox.server.app).update({"burst_429": 4, "retry_after": 0.01})
    connector = await make_connector()
    results = await connector.create(writes(10))
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert len(sandbox.customers()) == 10
    assert connector.client is not None
    assert connector.client.calls == 10 + 4


@pytest.mark.parametrize(
    "sandbox_options", [{"secret": SECRET, "rate_limit": 5, "rate_window": 0.05}]
)
async def test_the_vendor_rate_limit_answers_are_honoured(
    sandbox: Sandbox, make_connector: MakeConnector
) -> None:
    # the connector's own budget is set far above the app's limit, so the app's 429s (with
    # Retry-After until its window ends) are what paces it, and every customer still arrives
    connector = await make_connector(rate_limit=100_000, concurrency=8)
    # how many times one push loses the race for the next window is not fixed: allow plenty
    connector.client.retry = RetryPolicy(attempts=100, initial_wait=0.001, max_wait=0.01)
    results = await connector.create(writes(30))
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert len(sandbox.customers()) == 30


async def test_5xx_and_dropped_connections_are_retried(
    sandbox: Sandbox, make_connector: MakeConnector
) -> None:
    switches(sandbox.server.app).update({"error_rate": 0.3, "drop_rate": 0.1, "seed": 7})
    connector = await make_connector()
    # which push meets which failure depends on arrival order: allow enough attempts that none
    # runs out (0.4 ** 20 is negligible)
    connector.client.retry = RetryPolicy(attempts=20, initial_wait=0.001, max_wait=0.01)
    results = await connector.create(writes(25))
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert len(sandbox.customers()) == 25


async def test_an_app_that_stays_down_is_retry_later(
    sandbox: Sandbox, make_connector: MakeConnector
) -> None:
    switches(sandbox.server.app).update({"error_rate": 1.0})
    connector = await make_connector()
    with pytest.raises(RetryLater):
        await connector.create(writes(3))


async def test_concurrency_setting_caps_requests_in_flight(
    sandbox: Sandbox, make_connector: MakeConnector
) -> None:
    switches(sandbox.server.app).update({"latency_ms": 5})
    connector = await make_connector(concurrency=2, rate_limit=100_000)
    results = await connector.create(writes(12))
    assert all(r.ok for r in results)
    assert 1 <= sandbox.state.most_in_flight <= 2


async def test_settings_are_checked_before_anything_is_sent(tmp_path: Path) -> None:
    context = ConnectorContext(sync="s", side="b", state_dir=tmp_path)
    base = {"site": "demo-site", "list": "newsletter", "secret": SECRET}
    for bad, key in (
        ({"secret": ""}, "secret"),
        ({"site": None}, "site"),
        ({"types": "NEWSLETTER"}, "types"),
        ({"channels": "FAX"}, "channels"),
        ({"signature_encoding": "rot13"}, "signature_encoding"),
        ({"concurrency": 0}, "concurrency"),
        ({"update_existing": "perhaps"}, "update_existing"),
        ({"url": "https://example.com/not-a-list"}, "url"),
    ):
        with pytest.raises(ConnectorConfigError) as caught:
            SalesfireConnector({**base, **bad}, context)
        assert caught.value.key == key


async def test_one_budget_per_site_and_list_below_the_rate(tmp_path: Path) -> None:
    settings = {"site": "demo-site", "list": "newsletter", "secret": SECRET, "rate_limit": 120}
    first = SalesfireConnector(settings, ConnectorContext("one", "b", tmp_path))
    second = SalesfireConnector(settings, ConnectorContext("two", "b", tmp_path))
    other = SalesfireConnector({**settings, "list": "vip"}, ConnectorContext("x", "b", tmp_path))
    for connector in (first, second, other):
        await connector.open()
    try:
        assert first.client and second.client and other.client
        assert first.client.budget is second.client.budget
        assert first.client.budget is not other.client.budget
        budget = first.client.budget
        assert budget is not None
        # a sixth of the minute's allowance every ten seconds: no 60 s window sees much over 120
        assert (budget.calls, budget.period, budget.concurrency) == (20, 10.0, 4)
    finally:
        for connector in (first, second, other):
            await connector.close()


async def test_timeouts_are_retried_then_retry_later(
    sandbox: Sandbox, make_connector: MakeConnector
) -> None:
    # the app takes the pushes but answers none until the test is over (a latency would be a
    # race: a late answer could land, and store the customer, before the assertions)
    sandbox.hold.start()
    connector = await make_connector(timeout=0.05)
    connector.client.retry = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.01)
    with pytest.raises(RetryLater):
        await connector.create(writes(1))
    # three attempts were made; none was answered in time
    assert connector.client.calls == 3
    assert sandbox.customers() == []


async def test_an_email_change_keeps_the_id_and_later_pushes_use_the_new_email(
    sandbox: Sandbox, make_connector: MakeConnector
) -> None:
    connector = await make_connector()
    [created] = await connector.create([RecordWrite("c", {"email": "old@example.com"})])
    [moved] = await connector.update(
        [RecordWrite("c", {"email": "new@example.com"}, id=created.id)]
    )
    assert moved.ok and moved.id == created.id == "old@example.com"
    [renamed] = await connector.update([RecordWrite("c", {"name": "Renamed"}, id=created.id)])
    assert renamed.ok
    assert json.loads(raw_requests(sandbox)[-1][0])["email"] == "new@example.com"
    # Salesfire took the new email for a new customer; the old one stays (no delete API)
    stored = {c.email: c for c in sandbox.customers()}
    assert set(stored) == {"old@example.com", "new@example.com"}
    assert stored["new@example.com"].attributes == {"name": "Renamed"}
