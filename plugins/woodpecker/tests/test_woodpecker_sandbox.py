"""The emulator's own behaviour: what a client sees of Woodpecker's quirks."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import aiohttp
from syncd_woodpecker.connector import WoodpeckerConnector
from syncd_woodpecker.sandbox import DEFAULT_API_KEY, make_app
from syncd_woodpecker.sandbox_seed import seed_prospects
from syncd_woodpecker.sandbox_store import ProspectStore

from syncd.plugins import load_plugins


async def call(
    sandbox: Any,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> tuple[int, dict[str, str], Any]:
    async with (
        aiohttp.ClientSession(headers=headers or {"x-api-key": DEFAULT_API_KEY}) as session,
        session.request(method, f"{sandbox.base_url}{path}", **kwargs) as response,
    ):
        raw = await response.read()
        body = await response.json() if raw and response.content_type == "application/json" else raw
        return response.status, dict(response.headers), body


def test_woodpecker_plugin_registers_connector_and_sandbox() -> None:
    plugins = load_plugins()
    assert plugins.connector("woodpecker") is WoodpeckerConnector
    assert "woodpecker" in plugins.sandboxes
    assert not [p for p in plugins.problems if "woodpecker" in p.plugin]
    assert isinstance(plugins.sandboxes["woodpecker"].factory(None, {}), type(make_app()))


def test_woodpecker_seed_is_realistic_and_reproducible() -> None:
    first, second = ProspectStore(), ProspectStore()
    seed_prospects(first, 42, 300)
    seed_prospects(second, 42, 300)
    prospects = first.ordered()

    assert [p.fields for p in prospects] == [p.fields for p in second.ordered()]
    names = [(p.fields.get("first_name"), p.fields.get("last_name")) for p in prospects]
    assert len(set(names)) < len(names)  # people share names
    assert any(not name.isascii() for pair in names for name in pair if name)  # unicode
    assert any(len(p.fields.get("company", "")) > 200 for p in prospects)  # long values
    assert any(p.email != p.email.lower() for p in prospects)  # mixed-case addresses
    assert {"BLACKLIST", "BOUNCED", "ACTIVE"} <= {p.status for p in prospects}
    assert any(p.fields.get("tags", "").count("#") >= 2 for p in prospects)
    assert len({p.email.lower() for p in prospects}) == 300  # Woodpecker needs unique emails


async def test_woodpecker_sandbox_pages_with_total_and_204(start_sandbox: Any) -> None:
    sandbox = await start_sandbox(seed=1, count=7)

    status, headers, body = await call(sandbox, "GET", "/v1/prospects?page=2&per_page=5")
    assert status == 200 and headers["X-Total-Count"] == "7"
    assert [p["id"] for p in body] == sorted(sandbox.store.prospects)[5:]

    status, _, body = await call(sandbox, "GET", "/v1/prospects?page=3&per_page=5")
    assert status == 204 and body == b""

    status, _, body = await call(sandbox, "GET", "/v1/prospects?per_page=1001")
    assert status == 400 and body["status"]["code"] == "E_WRONG_PARAM"


async def test_woodpecker_sandbox_prospect_shape(start_sandbox: Any) -> None:
    sandbox = await start_sandbox()
    sandbox.store.add(
        email="a@example.com",
        snippet1="one",
        tags="#VC   #NEW",
        updated=datetime(2016, 9, 3, 13, 2, 57, tzinfo=UTC),
    )

    _, _, [prospect] = await call(sandbox, "GET", "/v1/prospects")

    assert prospect["updated"] == "2016-09-03T15:02:57+0200"  # offset without a colon
    assert prospect["snippet1"] == prospect["snipet1"] == "one"  # legacy spelling too
    assert prospect["tags"] == "#VC   #NEW"
    assert prospect["status"] == "ACTIVE"


async def test_woodpecker_sandbox_diff_filter(start_sandbox: Any) -> None:
    sandbox = await start_sandbox()
    sandbox.store.add(email="old@example.com", updated=datetime(2026, 1, 1, tzinfo=UTC))
    sandbox.store.add(email="new@example.com", updated=datetime(2026, 2, 1, tzinfo=UTC))

    _, _, body = await call(
        sandbox, "GET", "/v1/prospects", params={"diff": "updated>2026-01-15T01:00:00+0100"}
    )
    assert [p["email"] for p in body] == ["new@example.com"]

    status, _, body = await call(sandbox, "GET", "/v1/prospects", params={"diff": "updated>soon"})
    assert status == 400 and body["status"]["code"] == "E_WRONG_PARAM"


async def test_woodpecker_sandbox_search(start_sandbox: Any) -> None:
    sandbox = await start_sandbox()
    sandbox.store.add(email="anna@example.com", first_name="Anna")
    sandbox.store.add(email="joanna@example.com", first_name="Joanna")

    async def emails(search: str) -> list[str]:
        status, _, body = await call(sandbox, "GET", "/v1/prospects", params={"search": search})
        return [] if status == 204 else [p["email"] for p in body]

    assert await emails("email=ANNA@example.com") == ["anna@example.com"]
    assert await emails("email=.*anna.*") == ["anna@example.com", "joanna@example.com"]
    assert await emails("email=.*anna.*,first_name=Joanna") == ["joanna@example.com"]
    assert await emails("email=nobody@example.com") == []


async def test_woodpecker_sandbox_errors(start_sandbox: Any) -> None:
    sandbox = await start_sandbox()

    status, _, body = await call(sandbox, "GET", "/v1/prospects", headers={"x-api-key": "nope"})
    assert status == 401 and body["status"]["code"] == "E_SESSION"

    status, _, body = await call(sandbox, "GET", "/v1/contacts")
    assert status == 404 and body["status"]["code"] == "E_URL_NOT_FOUND"

    status, _, body = await call(sandbox, "POST", "/v1/add_prospects_list", json={})
    assert status == 400 and body["status"]["code"] == "E_REQUIRED_ELEMENT"

    status, _, body = await call(sandbox, "DELETE", "/v1/prospects?id=" + ",".join(["12345"] * 700))
    assert status == 414


async def test_woodpecker_sandbox_accepts_legacy_basic_auth(start_sandbox: Any) -> None:
    sandbox = await start_sandbox(seed=1, count=2)
    auth = "Basic " + base64.b64encode(f"{DEFAULT_API_KEY}:X".encode()).decode()

    status, _, body = await call(sandbox, "GET", "/v1/prospects", headers={"Authorization": auth})

    assert status == 200 and len(body) == 2
