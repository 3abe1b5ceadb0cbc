"""The emulator against Salesfire's own words: the help page's example body, its sentence on
``update_existing`` (and the other reading as an option), the connector's plain setting, and
faults in the shapes a Laravel API behind nginx answers."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from syncd_salesfire.connector import SalesfireConnector
from syncd_salesfire.sandbox import create_app, state

from syncd.connector import ConnectorConfigError, ConnectorContext, RecordWrite
from syncd.sandbox import SandboxServer, switches

SECRET = b"sandbox-secret"
PATH = "/client/demo-site/customers/newsletter"
#: the help page's example body, as published ("Syncing customers to Salesfire")
VENDOR_EXAMPLE = {
    "email": "example@salesfire.co.uk",
    "mobile_number": "123456789",
    "types": ["MARKETING", "TRANSACTIONAL"],
    "channels": ["EMAIL", "SMS"],
    "update_existing": True,
    "attributes": {"name": "John Smith", "date_of_birth": "04-09-1994"},
}


async def post(server: SandboxServer, body: Any) -> tuple[int, Any]:
    raw = json.dumps(body).encode()
    signature = hmac.new(SECRET, raw, hashlib.sha256).hexdigest()
    async with (
        aiohttp.ClientSession() as session,
        session.post(server.url + PATH, data=raw, headers={"X-Signature": signature}) as response,
    ):
        text = await response.text()
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, text


async def test_the_vendors_own_example_body_is_accepted() -> None:
    async with SandboxServer(create_app(None, {"rate_limit": 0})) as server:
        assert (await post(server, VENDOR_EXAMPLE))[0] == 201
        [customer] = state(server.app).lists["newsletter"].customers.values()
        assert customer.mobile_number == "123456789"
        # found again by its number's digits, however it is written
        again = {"mobile_number": "1234 56789", "attributes": {"name": "J. Smith"}}
        assert (await post(server, {**again, "update_existing": False}))[0] == 200
        assert customer.attributes["name"] == "J. Smith"
        for bad in ("12345", "call me", "+44 7700 900123 ext 5", "1" * 16):
            status, body = await post(server, {"mobile_number": bad})
            assert status == 422, bad
            assert body["errors"]["mobile_number"] == ["The mobile number format is invalid."]


@pytest.mark.parametrize(
    ("reading", "true_updates"), [(None, False), ("skip", False), ("update", True)]
)
async def test_update_existing_follows_the_help_pages_words_unless_told(
    reading: str | None, true_updates: bool
) -> None:
    options: dict[str, Any] = {"rate_limit": 0}
    if reading:
        options["update_existing_means"] = reading
    async with SandboxServer(create_app(None, options)) as server:
        first = {"email": "a@example.com", "attributes": {"name": "First"}}
        assert (await post(server, first))[0] == 201
        customer = next(iter(state(server.app).lists["newsletter"].customers.values()))
        for flag in (True, False):
            name = f"sent with {flag}"
            status, body = await post(
                server, {"email": "a@example.com", "update_existing": flag, "attributes": {
                    "name": name}}
            )  # fmt: skip
            assert status == 200
            updated = customer.attributes["name"] == name
            assert updated == (flag == true_updates), (flag, body)
        # no flag at all reads as false
        await post(server, {"email": "a@example.com", "attributes": {"name": "no flag"}})
        assert (customer.attributes["name"] == "no flag") == (not true_updates)


def test_an_unknown_reading_is_refused() -> None:
    with pytest.raises(ValueError, match="update_existing_means"):
        create_app(None, {"update_existing_means": "sometimes"})


@pytest.mark.parametrize("reading", ["skip", "update"])
@pytest.mark.parametrize("wanted", ["update", "skip"])
async def test_the_connector_gets_what_existing_customers_says_under_either_reading(
    tmp_path: Path, reading: str, wanted: str
) -> None:
    """Whichever way the account reads the flag, ``existing_customers`` is what the user gets,
    as long as ``update_existing_means`` says the account's reading."""
    app = create_app(None, {"rate_limit": 0, "update_existing_means": reading})
    async with SandboxServer(app) as server:
        settings = {
            "base_url": server.url,
            "site": "demo-site",
            "list": "newsletter",
            "secret": SECRET.decode(),
            "rate_limit": 100_000,
            "existing_customers": wanted,
            "update_existing_means": reading,
        }
        connector = SalesfireConnector(settings, ConnectorContext("s", "b", tmp_path))
        await connector.open()
        try:
            for name in ("First", "Second"):
                [result] = await connector.create(
                    [RecordWrite("k", {"email": "a@example.com", "name": name})]
                )
                assert result.ok, result.error
        finally:
            await connector.close()
        [customer] = state(app).lists["newsletter"].customers.values()
    assert customer.attributes["name"] == ("Second" if wanted == "update" else "First")


def test_the_setting_says_plainly_what_the_user_gets(tmp_path: Path) -> None:
    helps = {s.name: s.help for s in SalesfireConnector.settings}
    assert "update (the default: your changes are applied)" in helps["existing_customers"]
    assert "later changes never reach Salesfire" in helps["existing_customers"]
    assert "true skips existing customers" in helps["update_existing_means"]
    base = {"site": "demo-site", "list": "newsletter", "secret": "x"}
    context = ConnectorContext("s", "b", tmp_path)
    # the default: existing customers are updated; the page's reading sends false for that
    assert SalesfireConnector(base, context).defaults.update_existing is False
    both = {**base, "existing_customers": "update", "update_existing_means": "update"}
    assert SalesfireConnector(both, context).defaults.update_existing is True
    # the older key still means what it said, and may not contradict the new one
    assert SalesfireConnector({**base, "update_existing": False}, context).existing_customers == (
        "skip"
    )
    with pytest.raises(ConnectorConfigError) as caught:
        SalesfireConnector({**base, "update_existing": False, "existing_customers": "update"},
                           context)  # fmt: skip
    assert caught.value.key == "update_existing"
    with pytest.raises(ConnectorConfigError) as caught:
        SalesfireConnector({**base, "existing_customers": "merge"}, context)
    assert caught.value.key == "existing_customers"


async def test_faults_answer_as_laravel_behind_nginx() -> None:
    async with SandboxServer(create_app(None, {"rate_limit": 0})) as server:
        switches(server.app).update({"error_rate": 1.0, "seed": 3})
        seen: dict[int, Any] = {}
        for _ in range(40):
            status, body = await post(server, VENDOR_EXAMPLE)
            seen[status] = body
    assert set(seen) == {500, 502, 503, 504}
    assert seen[500] == {"message": "Server Error"}
    assert seen[503] == {"message": "Service Unavailable"}
    assert "<center><h1>502 Bad Gateway</h1></center>" in seen[502]
    assert "nginx" in seen[504]
