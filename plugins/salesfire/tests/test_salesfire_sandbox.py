"""The Salesfire emulator on its own: signatures, validation messages, upserts, inspection."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from syncd_salesfire.sandbox import SANDBOX_ONLY, create_app

from syncd.sandbox import SandboxServer

SECRET = b"sandbox-secret"
PATH = "/client/demo-site/customers/newsletter"


@pytest.fixture
async def server() -> AsyncIterator[SandboxServer]:
    async with SandboxServer(create_app(None, {"rate_limit": 3})) as running:
        yield running


async def post(
    server: SandboxServer, body: bytes, signature: str | None = None, path: str = PATH
) -> tuple[int, dict[str, Any], dict[str, str]]:
    sig = signature if signature is not None else hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    async with (
        aiohttp.ClientSession() as session,
        session.post(server.url + path, data=body, headers={"X-Signature": sig}) as response,
    ):
        return response.status, await response.json(), dict(response.headers)


async def get(server: SandboxServer, path: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(server.url + path) as response:
        text = await response.text()
        return response.status, json.loads(text) if text.startswith("{") else {}


async def test_a_signature_over_other_bytes_is_refused(server: SandboxServer) -> None:
    body = b'{"email":"a@example.com"}'
    same_json_other_bytes = b'{"email": "a@example.com"}'
    signature = hmac.new(SECRET, same_json_other_bytes, hashlib.sha256).hexdigest()
    status, answer, _ = await post(server, body, signature)
    assert (status, answer) == (401, {"message": "Invalid signature."})
    assert (await post(server, body, ""))[0] == 401
    assert (await post(server, body))[0] == 201


async def test_validation_messages(server: SandboxServer) -> None:
    customer = {
        "types": ["marketing", "NEWSLETTER"],
        "channels": "EMAIL",
        "attributes": {"Name": "x", "age": 3, "date_of_birth": "1994-13-01"},
    }
    status, answer, _ = await post(server, json.dumps(customer).encode())
    assert status == 422
    assert answer["message"] == "The given data was invalid."
    errors = answer["errors"]
    assert errors["email"] == ["The email field is required when mobile number is not present."]
    assert errors["types.0"] == ["The types.0 must be uppercase."]
    assert errors["types.1"] == ["The selected types.1 is invalid."]
    assert errors["channels"] == ["The channels must be an array."]
    assert "snake_case" in errors["attributes.Name"][0]
    assert errors["attributes.age"] == ["The attributes.age must be a string or null."]
    assert "not a valid date" in errors["attributes.date_of_birth"][0]
    # one customer per request: an array is refused
    status, answer, _ = await post(server, b'[{"email":"a@example.com"}]')
    assert status == 422 and "single customer" in json.dumps(answer)


async def test_upserts_by_email_and_skips_when_asked(server: SandboxServer) -> None:
    # the help page's reading (the default): update_existing true skips, false updates
    first = {"email": "a@example.com", "update_existing": False, "attributes": {"name": "A"}}
    assert (await post(server, json.dumps(first).encode()))[0] == 201
    again = {"email": "A@example.com", "update_existing": False, "attributes": {"tier": "gold"}}
    status, answer, headers = await post(server, json.dumps(again).encode())
    assert (status, answer["message"]) == (200, "Customer updated.")
    assert headers["X-RateLimit-Limit"] == "3"
    skip = {"email": "a@example.com", "update_existing": True, "attributes": {"name": "B"}}
    status, answer, _ = await post(server, json.dumps(skip).encode())
    assert "skipped" in answer["message"]
    # the fourth request in the window: Laravel-style throttle answer
    status, answer, headers = await post(server, json.dumps(skip).encode())
    assert (status, answer) == (429, {"message": "Too Many Attempts."})
    assert float(headers["Retry-After"]) > 0 and headers["X-RateLimit-Remaining"] == "0"

    status, listing = await get(server, "/_sandbox/customers?list=newsletter")
    assert listing["note"] == SANDBOX_ONLY
    [customer] = listing["customers"]
    assert customer["attributes"] == {"name": "A", "tier": "gold"}


async def test_there_is_no_read_api_and_unknown_lists_are_404(server: SandboxServer) -> None:
    assert (await get(server, PATH))[0] == 405
    assert (await post(server, b"{}", path="/client/demo-site/customers/nope"))[0] == 404
    assert (await post(server, b"{}", path="/client/other-site/customers/newsletter"))[0] == 404


async def test_seeded_lists_look_like_real_data() -> None:
    app = create_app(42, {"count": 200})
    async with SandboxServer(app) as running:
        _, listing = await get(running, "/_sandbox/customers?list=customers")
    customers = listing["customers"]
    assert listing["count"] == len(customers) == 200
    names = [c["attributes"]["name"] for c in customers]
    assert any(c["email"] is None and c["mobile_number"] for c in customers)  # mobile only
    assert len(set(names)) < len(names)  # repeated names
    assert any(not n.isascii() for n in names)  # unicode
    assert any(len(c["attributes"].get("notes") or "") >= 200 for c in customers)  # long values
    again = create_app(42, {"count": 200})
    async with SandboxServer(again) as running:
        _, second = await get(running, "/_sandbox/customers?list=customers")
    assert [c["email"] for c in second["customers"]] == [c["email"] for c in customers]
