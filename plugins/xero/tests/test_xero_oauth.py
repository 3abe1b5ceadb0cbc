"""OAuth against the sandbox: authorisation with PKCE and state, durable rotating tokens, expiry
in the middle of a run, lost refresh answers, revoked grants, custom connections."""

from __future__ import annotations

import asyncio
import json
import stat
import time
import urllib.parse
from typing import Any

import pytest
from syncd_xero.oauth import AuthorizationFailed
from syncd_xero.tokens import TokenFile

from syncd.connector import ConnectorConfigError, NeedsReauth, RecordWrite


def stored(env: Any, side: str = "a", sync: str = "t") -> dict[str, Any]:
    path = env.state_dir / "oauth" / f"xero-{sync}-{side}.json"
    return dict(json.loads(path.read_text()))


async def test_authorization_code_flow(xero: Any, prompt_factory: Any) -> None:
    env = await xero()
    connector = env.connector()
    prompt = prompt_factory()
    summary = await connector.authorize(prompt)
    assert "Demo Company (UK)" in summary
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(prompt.url).query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]
    assert query["state"][0] and "offline_access" in query["scope"][0]
    path = connector.token_file.path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    tokens = stored(env)
    assert tokens["refresh_token"] and tokens["access_token"]
    assert tokens["tenant_name"] == "Demo Company (UK)"
    # the secrets never show in what a log would print
    assert tokens["refresh_token"] not in repr(connector.tokens)
    assert tokens["access_token"] not in summary
    await connector.open()
    assert connector.tenant_id == tokens["tenant_id"]
    # the tenant was resolved at authorisation, so open() made no /Connections call
    assert (await env.calls()).get("GET /Connections") == 1


async def test_a_loopback_listener_catches_the_redirect(xero: Any, prompt_factory: Any) -> None:
    from syncd.sandbox import free_port

    env = await xero()
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    connector = env.connector(auth_listener=True, redirect_uri=redirect)
    prompt = prompt_factory()

    async def browser() -> None:
        await prompt.waiting.wait()
        async with env_session() as session, session.get(prompt.url) as landed:
            assert landed.status == 200 and "syncd received" in await landed.text()

    summary, _ = await asyncio.gather(connector.authorize(prompt), browser())
    assert "Demo Company (UK)" in summary and stored(env)["refresh_token"]


async def test_a_pasted_url_with_another_state_is_refused(xero: Any, prompt_factory: Any) -> None:
    env = await xero()
    connector = env.connector()
    prompt = prompt_factory()
    prompt.tamper = lambda url: url.replace("state=", "state=forged")
    with pytest.raises(AuthorizationFailed, match="state does not match"):
        await connector.authorize(prompt)
    assert not connector.token_file.path.exists()


async def test_a_pkce_client_without_secret_authorises(xero: Any, prompt_factory: Any) -> None:
    env = await xero()
    connector = env.connector(client_id="sandbox-pkce-client", client_secret=None)
    await connector.authorize(prompt_factory())
    await connector.open()
    assert "Demo Company" in await connector.check()


async def test_several_organisations_need_the_tenant_setting(
    xero: Any, prompt_factory: Any
) -> None:
    env = await xero()
    connector = env.connector(tenant=None)
    with pytest.raises(ConnectorConfigError) as caught:
        await connector.authorize(prompt_factory())
    assert caught.value.key == "tenant" and "Demo Company (NZ)" in str(caught.value)
    by_id = env.connector(side="b", tenant=next(iter(env.accounting.orgs)))
    assert "Demo Company (UK)" in await by_id.authorize(prompt_factory())


async def test_a_tenant_the_grant_does_not_reach_is_a_config_error(
    xero: Any, prompt_factory: Any
) -> None:
    env = await xero()
    connector = env.connector(tenant="Nonexistent Ltd")
    with pytest.raises(ConnectorConfigError, match="does not reach"):
        await connector.authorize(prompt_factory())


async def test_a_changed_tenant_setting_is_resolved_on_open(xero: Any) -> None:
    env = await xero()
    await env.authorized()
    moved = env.connector(tenant="Demo Company (NZ)")
    await moved.open()
    assert moved.tenant_name == "Demo Company (NZ)"
    assert stored(env)["tenant_name"] == "Demo Company (NZ)"


async def test_not_authorised_yet_needs_reauth_with_the_fix(xero: Any) -> None:
    env = await xero()
    connector = env.connector(sync="xero-salesflare", side="a")
    with pytest.raises(NeedsReauth) as caught:
        await connector.open()
    assert caught.value.fix == "syncd auth xero-salesflare a"


async def test_an_expired_access_token_is_refreshed_mid_run_and_rotated(xero: Any) -> None:
    env = await xero(seed=4, count=120)
    # 12 pages: more than the listing reads ahead (5), so that some are asked for after the
    # expiry, several at once, and they share one refresh
    connector = await env.authorized(page_size=10)
    before = stored(env)
    pages = connector.list_records(None)
    first = await anext(pages)
    await env.control("POST", "/_sandbox/xero/tokens/expire")
    rest = [page async for page in pages]
    assert len(first) + sum(len(p) for p in rest) == 120
    after = stored(env)
    assert after["refresh_token"] != before["refresh_token"]  # rotated ...
    assert after["access_token"] == connector.tokens.tokens.access_token  # ... and saved first
    assert connector.tokens.refreshes == 1
    assert any(e.status == 401 for e in env.exchanges)


async def test_tokens_are_refreshed_ahead_of_expiry(xero: Any) -> None:
    env = await xero()
    connector = await env.authorized()
    file = TokenFile(connector.token_file.path)
    tokens = file.load()
    assert tokens is not None
    tokens.expires_at = time.time() + 60  # inside the five-minute margin
    file.save(tokens)
    connector.tokens.tokens = tokens
    await connector.check()
    assert connector.tokens.refreshes == 1
    assert not any(e.status == 401 for e in env.exchanges)


async def test_an_idle_grant_is_refreshed_weekly(xero: Any) -> None:
    env = await xero()
    connector = await env.authorized()
    file = TokenFile(connector.token_file.path)
    tokens = file.load()
    assert tokens is not None
    tokens.refreshed_at = time.time() - 8 * 24 * 3600
    file.save(tokens)
    idle = env.connector()
    before = time.time()
    await idle.open()
    await idle.keep_alive()
    assert idle.tokens.refreshes == 1
    assert stored(env)["refreshed_at"] >= before - 1  # refreshed now, not eight days ago


async def test_a_lost_refresh_answer_is_retried_with_the_old_token(xero: Any) -> None:
    env = await xero()
    connector = await env.authorized()
    old = stored(env)
    # Another refresh reached Xero, but its answer never came back: Xero rotated the token, and
    # the file still holds the old one.
    async with env_session() as session:
        response = await session.post(
            env.url + "/connect/token",
            data={"grant_type": "refresh_token", "refresh_token": old["refresh_token"]},
            headers=basic(),
        )
        assert response.status == 200
    await env.control("POST", "/_sandbox/xero/tokens/expire")
    await connector.check()  # within the 30-minute grace period the old token still works
    assert stored(env)["refresh_token"] != old["refresh_token"]

    # past the grace period the old token is dead: the sync needs a new authorisation
    stale = env.connector(side="b")
    TokenFile(stale.token_file.path).save(TokenFile(connector.token_file.path).load())  # type: ignore[arg-type]
    file = TokenFile(stale.token_file.path)
    tokens = file.load()
    assert tokens is not None
    tokens.refresh_token = old["refresh_token"]
    file.save(tokens)
    await env.control("POST", "/_sandbox/xero/clock", {"advance": 31 * 60})
    await stale.open()
    with pytest.raises(NeedsReauth) as caught:
        await stale.check()
    assert caught.value.fix == "syncd auth t b"


async def test_a_revoked_grant_needs_reauth(xero: Any) -> None:
    env = await xero()
    connector = await env.authorized(sync="xero-salesflare")
    await env.control("POST", "/_sandbox/xero/grants/revoke", {})
    with pytest.raises(NeedsReauth) as caught:
        await connector.create([RecordWrite("k", {"Name": "Never"})])
    assert "invalid_grant" in str(caught.value)
    assert caught.value.fix == "syncd auth xero-salesflare a"
    assert await env.contacts() == []


async def test_one_refresh_at_a_time_per_token_set(xero: Any) -> None:
    """Two connectors on one token file (as two processes would be) refresh once: the second
    waits for the file lock, re-reads the file and finds fresh tokens."""
    env = await xero()
    first = await env.authorized()
    second = env.connector()
    await second.open()
    await env.control("POST", "/_sandbox/xero/tokens/expire")
    await asyncio.gather(first.check(), second.check(), first.check(), second.check())
    assert first.tokens.refreshes + second.tokens.refreshes == 1
    assert (await env.state())["tokens_issued"]["refresh_token"] == 1


async def test_a_disconnected_organisation_needs_reauth(xero: Any) -> None:
    env = await xero()
    connector = await env.authorized()
    token = connector.tokens.tokens
    assert token is not None
    async with env_session() as session:
        headers = {"Authorization": f"Bearer {token.access_token}"}
        async with session.get(env.url + "/Connections", headers=headers) as response:
            connections = await response.json()
        uk = next(c for c in connections if c["tenantName"] == "Demo Company (UK)")
        async with session.delete(f"{env.url}/Connections/{uk['id']}", headers=headers) as gone:
            assert gone.status == 204
    with pytest.raises(NeedsReauth, match="403"):
        await connector.check()


async def test_client_credentials_need_no_refresh_token_nor_tenant(xero: Any) -> None:
    env = await xero(seed=1, count=30)
    connector = env.connector(
        client_id="sandbox-custom-client",
        client_secret="sandbox-custom-secret",
        grant="client_credentials",
        tenant=None,
    )
    assert "no authorisation" in await connector.authorize(None)  # type: ignore[arg-type]
    records = [r for page in [p async for p in connector.list_records(None)] for r in page]
    assert len(records) == 30
    assert connector.tokens.tokens is not None and connector.tokens.tokens.refresh_token is None
    assert not connector.token_file.path.exists()
    await env.control("POST", "/_sandbox/xero/tokens/expire")
    assert "Demo Company (UK)" in await connector.check()
    assert (await env.state())["tokens_issued"]["client_credentials"] == 2


async def test_bad_client_credentials_are_a_clear_typed_failure(xero: Any) -> None:
    env = await xero()
    connector = env.connector(
        client_id="sandbox-custom-client", client_secret="wrong", grant="client_credentials"
    )
    with pytest.raises(NeedsReauth) as caught:
        await connector.open()
    assert "invalid_client" in str(caught.value)
    assert "wrong" not in str(caught.value) and "client_secret" in caught.value.fix
    with pytest.raises(ConnectorConfigError) as missing:
        env.connector(grant="client_credentials", client_secret=None)
    assert missing.value.key == "client_secret"


async def test_a_bad_secret_at_authorisation_is_a_typed_failure(
    xero: Any, prompt_factory: Any
) -> None:
    env = await xero()
    connector = env.connector(client_secret="not-the-secret")
    with pytest.raises(NeedsReauth, match="invalid_client"):
        await connector.authorize(prompt_factory())


# --- helpers --------------------------------------------------------------------------------


def env_session() -> Any:
    import aiohttp

    return aiohttp.ClientSession()


def basic() -> dict[str, str]:
    import base64

    return {"Authorization": "Basic " + base64.b64encode(b"sandbox-client:sandbox-secret").decode()}
