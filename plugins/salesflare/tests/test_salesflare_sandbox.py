"""The emulator itself: Salesflare's paths, auth, shapes, paging, validation and seed data."""

from __future__ import annotations

from collections import Counter
from typing import Any

import aiohttp
from aiohttp import web
from syncd_salesflare.sandbox import STATE, make_app

from syncd.plugins import load_plugins

AUTH = {"Authorization": "Bearer sandbox-api-key"}


async def call(sandbox: Any, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    kwargs.setdefault("headers", AUTH)
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, sandbox.url + path, **kwargs) as response,
    ):
        return response.status, await response.json()


def test_the_plugin_registers_the_connector_and_the_sandbox():
    plugins = load_plugins()
    assert not [p for p in plugins.problems if "salesflare" in p.plugin]
    assert plugins.connectors["salesflare"].__name__ == "SalesflareConnector"
    # the factory imports the emulator lazily and builds the same application
    app = plugins.sandboxes["salesflare"].factory(None, {})
    assert isinstance(app, web.Application)
    assert type(app) is type(make_app(None, {}))


async def test_auth_is_a_bearer_key_refused_in_boom_shape(start_sandbox):
    sandbox = await start_sandbox()
    assert await call(sandbox, "GET", "/contacts", headers={}) == (
        401,
        {"statusCode": 401, "error": "Unauthorized", "message": "Missing authentication"},
    )
    status, body = await call(sandbox, "GET", "/me", headers={"Authorization": "Bearer nope"})
    assert (status, body["message"]) == (401, "Bad token")


async def test_contacts_page_as_a_bare_array_with_default_limit_20(start_sandbox):
    sandbox = await start_sandbox(seed=30, count=45)
    status, first = await call(sandbox, "GET", "/contacts")
    assert status == 200 and isinstance(first, list) and len(first) == 20
    assert all(not c["archived"] for c in first)  # archived ones only with includeArchived
    _, last = await call(sandbox, "GET", "/contacts?includeArchived=true&offset=40&order_by=id")
    assert len(last) == 5
    assert last[0]["modification_date"].endswith("Z") and "." in last[0]["modification_date"]
    status, body = await call(sandbox, "GET", "/contacts?limit=0")
    assert status == 400 and body["validation"]["source"] == "query"
    status, body = await call(sandbox, "GET", "/contacts?pageSize=10")
    assert status == 400 and body["message"] == '"pageSize" is not allowed'


async def test_order_by_accepts_known_keys_and_desc(start_sandbox):
    sandbox = await start_sandbox(seed=31, count=30, sort_keys=["id"])
    _, down = await call(sandbox, "GET", "/contacts?order_by=id%20desc&limit=100")
    assert [c["id"] for c in down] == sorted((c["id"] for c in down), reverse=True)
    status, body = await call(sandbox, "GET", "/contacts?order_by=creation_date")
    assert status == 400 and body["validation"]["errors"][0]["path"] == "order_by.0"


async def test_create_validation_names_the_first_bad_item_like_joi(start_sandbox):
    sandbox = await start_sandbox()
    payload = [{"email": "ok@example.test"}, {"lastname": "x", "email": "nope"}, {"foo": 1}]
    status, body = await call(sandbox, "POST", "/contacts", json=payload)
    assert status == 400
    assert body == {
        "statusCode": 400,
        "error": "Bad Request",
        "message": '"[1].email" must be a valid email',
        "validation": {
            "source": "payload",
            "errors": [
                {
                    "path": "1.email",
                    "message": '"[1].email" must be a valid email',
                    "type": "string",
                    "constraint": "email",
                    "label": "[1].email",
                }
            ],
        },
    }
    assert sandbox.state.contacts == {}  # refused whole
    status, body = await call(sandbox, "POST", "/contacts", json={"phone_number": "1"})
    assert status == 400 and body["message"] == (
        '"value" must contain at least one of [name, email, prefix, firstname, middle, '
        "lastname, suffix]"
    )


async def test_create_answers_an_object_for_one_item_and_an_array_for_more(start_sandbox):
    sandbox = await start_sandbox()
    status, one = await call(sandbox, "POST", "/contacts", json=[{"email": " A@B.test "}])
    assert status == 200 and set(one) == {"id"}
    assert sandbox.state.contacts[one["id"]]["email"] == "a@b.test"
    _, two = await call(sandbox, "POST", "/contacts", json=[{"name": "x"}, {"name": "y"}])
    assert isinstance(two, list) and len(two) == 2
    _, existing = await call(
        sandbox, "POST", "/contacts?force=false", json=[{"email": "a@b.test"}, {"name": "z"}]
    )
    assert existing[0] == one  # force=false answers the existing contact's id


async def test_put_and_delete_and_accounts(start_sandbox):
    sandbox = await start_sandbox()
    _, created = await call(sandbox, "POST", "/contacts", json={"firstname": "Ann"})
    status, _ = await call(sandbox, "PUT", f"/contacts/{created['id']}", json={"archived": True})
    assert status == 200 and sandbox.state.contacts[created["id"]]["archived"] is True
    status, body = await call(sandbox, "PUT", f"/contacts/{created['id']}", json={"x": 1})
    assert status == 400 and body["message"] == '"x" is not allowed'
    status, _ = await call(sandbox, "DELETE", f"/contacts/{created['id']}")
    assert status == 200
    assert await call(sandbox, "GET", f"/contacts/{created['id']}") == (
        404,
        {"statusCode": 404, "error": "Not Found", "message": "Not Found"},
    )
    _, account = await call(sandbox, "POST", "/accounts", json={"name": "Kale & Co"})
    _, found = await call(sandbox, "GET", "/accounts", params={"name": "kale"})
    assert [a["id"] for a in found] == [account["id"]]
    status, fields = await call(sandbox, "GET", "/customfields/contacts")
    assert "xero_account_number" in {f["api_field"] for f in fields}


def test_seed_data_is_deterministic_and_realistically_messy():
    def contacts(seed: int) -> list[dict[str, Any]]:
        app = make_app(seed, {"count": 300})
        state = app[STATE]
        return [state.render_contact(c) for c in state.contacts.values()]

    first = contacts(5)
    assert first == contacts(5) and first != contacts(6)
    assert len(first) == 300
    assert sum(1 for c in first if not c["email"]) >= 10  # missing emails
    names = Counter(c["name"] for c in first)
    assert any(n > 1 for n in names.values())  # people sharing a name
    emails = Counter(c["email"] for c in first if c["email"])
    assert any(n > 1 for n in emails.values())  # the odd email held twice (force=true)
    assert any(any(ord(ch) > 127 for ch in c["name"]) for c in first)  # unicode
    assert any(len(c["role"] or "") > 200 for c in first)  # long values
    assert any(c["archived"] for c in first)
    assert any(c["custom"] for c in first) and any(c["addresses"] for c in first)


def _active_emails_by_vendor(seed: int, count: int) -> dict[str, set[str]]:
    """The active contacts' emails of each vendor's sandbox seeded with ``seed``, built the
    way ``syncd sandbox NAME --seed N`` builds them (each plugin's registered factory)."""
    from syncd_woodpecker.sandbox import store_of
    from syncd_xero.sandbox import STATE_KEY

    sandboxes = load_plugins().sandboxes
    vendors = ("xero", "salesflare", "woodpecker")
    apps = {name: sandboxes[name].factory(seed, {"count": str(count)}) for name in vendors}
    xero = apps["xero"][STATE_KEY]
    salesflare = apps["salesflare"][STATE]
    return {
        "xero": {
            str(c["EmailAddress"]).lower()
            for org in xero.orgs.values()
            for c in org.contacts.values()
            if c.get("EmailAddress") and c.get("ContactStatus") == "ACTIVE"
        },
        "salesflare": {
            str(c["email"]).lower()
            for c in salesflare.contacts.values()
            if c.get("email") and not c.get("archived")
        },
        "woodpecker": {p.email.lower() for p in store_of(apps["woodpecker"]).ordered()},
    }


def test_sandboxes_of_different_vendors_seeded_alike_share_people() -> None:
    # `syncd sandbox xero --seed 1` and `syncd sandbox salesflare --seed 1` must show a merge
    for seed in (1, 2):
        emails = _active_emails_by_vendor(seed, 300)
        pairs = (("xero", "salesflare"), ("xero", "woodpecker"), ("salesflare", "woodpecker"))
        for one, two in pairs:
            shared = emails[one] & emails[two]
            assert len(shared) >= 60, (seed, one, two, len(shared))  # about a third of 300
    # the people are the seed's: other seeds share (next to) nobody
    one, two = _active_emails_by_vendor(1, 300), _active_emails_by_vendor(2, 300)
    assert len(one["xero"] & two["salesflare"]) < 5
