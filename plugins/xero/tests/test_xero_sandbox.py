"""The emulator on its own, spoken to over raw HTTP: Xero's shapes, rules and quirks."""

from __future__ import annotations

import base64
import collections
from typing import Any

import aiohttp
from aiohttp import web
from syncd_xero.sandbox import make_app
from syncd_xero.sandbox_data import Clock, Org, seed_org
from syncd_xero.sandbox_filter import FilterError, parse_where

from syncd.plugins import load_plugins


async def token_for(env: Any) -> dict[str, str]:
    """Headers of a custom-connection token (no browser needed)."""
    pair = base64.b64encode(b"sandbox-custom-client:sandbox-custom-secret").decode()
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            env.url + "/connect/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {pair}"},
        ) as response,
    ):
        body = await response.json()
    tenant = next(iter(env.accounting.orgs))
    return {"Authorization": f"Bearer {body['access_token']}", "xero-tenant-id": tenant}


async def call(
    env: Any, method: str, path: str, headers: dict[str, str], **kwargs: Any
) -> tuple[int, Any, Any]:
    # raw requests break the spec on purpose; the contract check still reads the answers
    raw = {**headers, "X-Test-Raw": "1"}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, env.url + path, headers=raw, **kwargs) as response,
    ):
        text = await response.text()
        body = await response.json(content_type=None) if text else None
        return response.status, body, response.headers


async def test_the_plugin_registers_the_connector_and_the_sandbox() -> None:
    plugins = load_plugins()
    assert plugins.connector("xero") is not None
    assert "xero" in plugins.sandboxes
    assert not [p for p in plugins.problems if "xero" in p.plugin]
    # the factory imports the emulator lazily and builds the same application
    app = plugins.sandboxes["xero"].factory(None, {})
    assert isinstance(app, web.Application)
    assert type(app) is type(make_app(None, {}))


def test_seeded_data_is_realistic_and_respects_xeros_rules() -> None:
    org = Org("t", "Demo", Clock())
    import random

    seed_org(org, random.Random(1), 300)
    contacts = list(org.contacts.values())
    assert len(contacts) == 300
    assert any(not c["EmailAddress"] for c in contacts)
    assert any(not c["Name"].isascii() for c in contacts)
    assert any(len(c["Name"]) > 200 for c in contacts)
    assert any(len(a.get("AddressLine1", "")) > 400 for c in contacts for a in c["Addresses"])
    active = [c["Name"].casefold() for c in contacts if c["ContactStatus"] == "ACTIVE"]
    assert len(active) == len(set(active))  # Xero's unique-Name rule holds
    everyone = collections.Counter(c["Name"] for c in contacts)
    assert any(n > 1 for n in everyone.values())  # repeated names live on archived contacts
    again = Org("t", "Demo", Clock())
    seed_org(again, random.Random(1), 300)
    assert list(again.contacts) == list(org.contacts)  # the seed decides everything


async def test_access_needs_a_token_and_a_tenant(xero: Any) -> None:
    env = await xero(seed=1, count=5)
    status, body, headers = await call(env, "GET", "/api.xro/2.0/Contacts", {})
    assert status == 401 and body["Title"] == "Unauthorized"
    assert "invalid_token" in headers["WWW-Authenticate"]
    auth = await token_for(env)
    other = {**auth, "xero-tenant-id": "5cc8cf28-567e-4d43-b287-687cfcaec47c"}
    status, body, _ = await call(env, "GET", "/api.xro/2.0/Contacts", other)
    assert status == 403 and body["Detail"] == "AuthorizationUnsuccessful"
    status, body, headers = await call(env, "GET", "/api.xro/2.0/Contacts?page=1", auth)
    assert status == 200 and body["pagination"]["itemCount"] >= 4
    assert body["DateTimeUTC"].startswith("/Date(")


async def test_summarize_errors_true_is_all_or_nothing(xero: Any) -> None:
    env = await xero()
    auth = await token_for(env)
    payload = {"Contacts": [{"Name": "Fine"}, {"Name": "", "EmailAddress": "x@y.z"}]}
    status, body, _ = await call(env, "PUT", "/api.xro/2.0/Contacts", auth, json=payload)
    assert status == 400 and body["Type"] == "ValidationException" and body["ErrorNumber"] == 10
    [element] = body["Elements"]
    assert element["ValidationErrors"] == [{"Message": "Contact Name cannot be empty."}]
    assert await env.contacts() == []
    status, body, _ = await call(
        env, "PUT", "/api.xro/2.0/Contacts?summarizeErrors=false", auth, json=payload
    )
    assert status == 200
    assert [c["StatusAttributeString"] for c in body["Contacts"]] == ["OK", "ERROR"]
    assert [c["Name"] for c in await env.contacts()] == ["Fine"]


async def test_validation_messages(xero: Any) -> None:
    env = await xero()
    auth = await token_for(env)
    await env.add({"Name": "Buzz Lightyear", "ContactNumber": "C1"})
    payload = {
        "Contacts": [
            {"Name": "buzz lightyear"},
            {"Name": "Long", "FirstName": "F" * 256},
            {"Name": "Mail", "EmailAddress": "a@b"},
            {"Name": "Number", "ContactNumber": "C1"},
        ]
    }
    _, body, _ = await call(
        env, "PUT", "/api.xro/2.0/Contacts?summarizeErrors=false", auth, json=payload
    )
    messages = [c["ValidationErrors"][0]["Message"] for c in body["Contacts"]]
    assert messages == [
        "The contact name buzz lightyear is already assigned to another contact. The contact "
        "name must be unique across all active contacts.",
        "FirstName must not be more than 255 characters long.",
        "Email address must be valid.",
        "The contact number C1 is already assigned to another contact.",
    ]
    # the echo is cut to the spec's limits so that the answer itself stays valid
    assert len(body["Contacts"][1]["FirstName"]) == 255


async def test_archived_names_may_repeat_but_not_be_restored_over_an_active_one(
    xero: Any,
) -> None:
    env = await xero()
    auth = await token_for(env)
    old, _ = await env.add(
        {"Name": "Twin", "ContactStatus": "ARCHIVED"}, {"Name": "Twin", "ContactStatus": "ACTIVE"}
    )
    payload = {"Contacts": [{"ContactID": old["ContactID"], "ContactStatus": "ACTIVE"}]}
    _, body, _ = await call(
        env, "POST", "/api.xro/2.0/Contacts?summarizeErrors=false", auth, json=payload
    )
    assert "already assigned" in body["Contacts"][0]["ValidationErrors"][0]["Message"]


async def test_where_filters_and_includes_archived_only_when_asked(xero: Any) -> None:
    env = await xero()
    auth = await token_for(env)
    await env.add(
        {"Name": "Ann", "EmailAddress": "ANN@x.com"},
        {"Name": "Bob", "EmailAddress": "bob@x.com", "ContactStatus": "ARCHIVED"},
    )
    where = 'EmailAddress=="ann@x.com" OR EmailAddress=="bob@x.com"'
    _, body, _ = await call(env, "GET", "/api.xro/2.0/Contacts", auth, params={"where": where})
    assert [c["Name"] for c in body["Contacts"]] == ["Ann"]
    params = {"where": where, "includeArchived": "true"}
    _, body, _ = await call(env, "GET", "/api.xro/2.0/Contacts", auth, params=params)
    assert sorted(c["Name"] for c in body["Contacts"]) == ["Ann", "Bob"]
    _, body, _ = await call(
        env, "GET", "/api.xro/2.0/Contacts", auth, params={"where": 'Name.StartsWith("a")'}
    )
    assert [c["Name"] for c in body["Contacts"]] == ["Ann"]
    status, body, _ = await call(
        env, "GET", "/api.xro/2.0/Contacts", auth, params={"where": "Name=="}
    )
    assert status == 400 and body["Type"] == "QueryParseException"


def test_the_filter_language() -> None:
    contact = {"Name": "Ann O'Neil", "EmailAddress": "", "ContactStatus": "ACTIVE"}
    assert parse_where('Name=="ann o\'neil" AND ContactStatus=="ACTIVE"')(contact)
    assert parse_where("EmailAddress==null")(contact)
    assert parse_where('!(Name.Contains("bob")) && Name.ToLower()=="ann o\'neil"')(contact)
    assert not parse_where('Name=="x" || ContactStatus!="ACTIVE"')(contact)
    assert parse_where('Name=="say \\"hi\\""')({"Name": 'say "hi"'})
    for broken in ("Name==", '(Name=="a"', 'Name~"a"', 'Name=="a" extra'):
        try:
            parse_where(broken)
        except FilterError:
            continue
        raise AssertionError(f"{broken!r} parsed")


async def test_idempotency_keys_replay_and_are_bounded(xero: Any) -> None:
    env = await xero()
    auth = await token_for(env)
    payload = {"Contacts": [{"Name": "Once"}]}
    keyed = {**auth, "Idempotency-Key": "k-1"}
    url = "/api.xro/2.0/Contacts?summarizeErrors=false"
    _, first, _ = await call(env, "PUT", url, keyed, json=payload)
    _, second, _ = await call(env, "PUT", url, keyed, json=payload)
    assert first == second and len(await env.contacts()) == 1
    status, _, _ = await call(env, "PUT", url, {**auth, "Idempotency-Key": "k" * 129}, json=payload)
    assert status == 400


async def test_if_modified_since_accepts_iso_and_http_dates(xero: Any) -> None:
    env = await xero(seed=3, count=20)
    auth = await token_for(env)
    for since in ("2999-01-01T00:00:00", "Fri, 01 Jan 2999 00:00:00 GMT"):
        _, body, _ = await call(
            env, "GET", "/api.xro/2.0/Contacts", {**auth, "If-Modified-Since": since}
        )
        assert body["Contacts"] == []
    # a malformed value is ignored, as Xero is reported to do
    _, body, _ = await call(
        env, "GET", "/api.xro/2.0/Contacts", {**auth, "If-Modified-Since": "yesterday"}
    )
    assert len(body["Contacts"]) > 0


async def test_refresh_tokens_rotate_with_a_grace_period(xero: Any, prompt_factory: Any) -> None:
    env = await xero()
    connector = env.connector()
    await connector.authorize(prompt_factory())
    tokens = connector.tokens.tokens
    assert tokens is not None and tokens.refresh_token
    pair = base64.b64encode(b"sandbox-client:sandbox-secret").decode()
    headers = {"Authorization": f"Basic {pair}"}

    async def refresh(token: str) -> tuple[int, Any, Any]:
        form = {"grant_type": "refresh_token", "refresh_token": token}
        return await call(env, "POST", "/connect/token", headers, data=form)

    status, first, _ = await refresh(tokens.refresh_token)
    assert status == 200 and first["refresh_token"] != tokens.refresh_token
    status, again, _ = await refresh(tokens.refresh_token)  # the answer was lost: retry
    assert status == 200 and again["refresh_token"] == first["refresh_token"]
    await env.control("POST", "/_sandbox/xero/clock", {"advance": 1801})
    status, body, _ = await refresh(tokens.refresh_token)
    assert status == 400 and body == {"error": "invalid_grant"}
    status, second, _ = await refresh(first["refresh_token"])
    assert status == 200
    await env.control("POST", "/_sandbox/xero/clock", {"advance": 61 * 24 * 3600})
    status, body, _ = await refresh(second["refresh_token"])
    assert body == {"error": "invalid_grant"}  # 60 idle days
