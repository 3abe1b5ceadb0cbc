"""OAuth tokens in a PostgreSQL store (issue 17): encrypted at rest with ``[store] token_key``,
read by any daemon, refreshed only by the process holding the sync's claim and written back in
the same transaction as its claim check, so a rotating refresh token is sent once. Against the
real PostgreSQL the suite starts and the Xero emulator over HTTP (its rotated refresh tokens
are not honoured again: ``refresh_grace = 0``, so a second use fails with ``invalid_grant``)."""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.fernet import Fernet
from pg_support import new_database
from pg_xero import XeroCluster, XeroSandbox, authorise, xero_connector

from syncd.connector import NeedsReauth, RetryLater
from syncd.store import ClaimLost, Store, StoreSettings
from syncd.store.tokens import TokenKeyError
from syncd.testing.daemon import wait_until

SYNCD = [str(Path(os.sys.executable).parent / "syncd")]
KEY = Fernet.generate_key().decode()


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    box = XeroSandbox(seed=3, count=12, rate_limits=False, refresh_grace=0)
    yield box
    box.close()


def pg_store(state: Path, url: str, key: str | None = KEY, lease: float = 30.0) -> Store:
    store = Store(state, StoreSettings(url=url, lease_timeout=lease, token_key=key))
    store.open()
    return store


def rows(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return list(conn.execute(sql, params).fetchall())


async def test_tokens_are_kept_encrypted_in_the_store_and_read_by_another_daemon(
    tmp_path: Path, sandbox: XeroSandbox
) -> None:
    url = new_database()
    first, second = pg_store(tmp_path / "one", url), pg_store(tmp_path / "two", url)
    try:
        summary = await authorise(first, sandbox, "crm")
        assert "tokens saved in the store" in summary
        # nothing in the state directory: the tokens are in the database only
        assert not (tmp_path / "one" / "oauth").exists()
        ((name, sync, side, data, version),) = rows(
            url, "SELECT name, sync, side, data, version FROM oauth_token"
        )
        assert (name, sync, side, version) == ("xero-crm-a", "crm", "a", 1)
        plain = json.loads(Fernet(KEY.encode()).decrypt(data.encode()))
        assert plain["refresh_token"].startswith("sbx-rt-")
        # ciphertext: neither token (nor any piece of them) is in the column
        for secret in (plain["refresh_token"], plain["access_token"]):
            assert secret not in data and secret[7:19] not in data
        assert "sbx-" not in data and "tenant" not in data

        other = xero_connector(second, sandbox, "crm")
        try:
            assert "Demo Company (UK)" in await other.check()
        finally:
            await other.close()
        assert other.tokens.tokens.access_token == plain["access_token"]
        assert sandbox.refreshes() == 0
        assert not (tmp_path / "two" / "oauth").exists()
    finally:
        first.close()
        second.close()


async def test_a_wrong_key_is_named_and_never_shown(tmp_path: Path, sandbox: XeroSandbox) -> None:
    url = new_database()
    store = pg_store(tmp_path / "one", url)
    try:
        await authorise(store, sandbox, "crm")
    finally:
        store.close()
    wrong = Fernet.generate_key().decode()
    with pytest.raises(TokenKeyError) as caught:
        pg_store(tmp_path / "two", url, key=wrong)
    message = str(caught.value)
    assert "[store] token_key does not decrypt" in message and "'xero-crm-a'" in message
    assert wrong not in message and KEY not in message
    with pytest.raises(TokenKeyError, match=r"\[store\] token_key is not set"):
        pg_store(tmp_path / "three", url, key=None)
    # rotation: the new key first, the old one after it; new writes use the new key
    rotated = pg_store(tmp_path / "four", url, key=f"{wrong}, {KEY}")
    try:
        connector = xero_connector(rotated, sandbox, "crm")
        try:
            await connector.open()
            sandbox.expire_access_tokens()
            await connector.check()  # a 401, a refresh, written with the new key
        finally:
            await connector.close()
    finally:
        rotated.close()
    ((data,),) = rows(url, "SELECT data FROM oauth_token")
    assert json.loads(Fernet(wrong.encode()).decrypt(data.encode()))["refresh_token"]


async def test_two_daemons_refreshing_at_once_send_each_refresh_token_once(
    tmp_path: Path, sandbox: XeroSandbox
) -> None:
    url = new_database()
    stores = [pg_store(tmp_path / f"d{i}", url) for i in range(3)]
    try:
        await authorise(stores[0], sandbox, "crm")
        connectors = [xero_connector(store, sandbox, "crm") for store in stores]
        for connector in connectors:
            await connector.open()
        for round_ in range(5):
            sandbox.expire_access_tokens()
            # three processes find the access token refused at the same moment: the token row's
            # lock lets one refresh; the others find the fresh tokens under it
            await asyncio.gather(*(c.check() for c in connectors))
            assert sandbox.refreshes() == round_ + 1
        assert sum(c.tokens.refreshes for c in connectors) == 5
        assert sandbox.state()["refresh_reuses"] == 0
        for connector in connectors:
            await connector.close()
    finally:
        for store in stores:
            store.close()


def in_context(context: contextvars.Context, coro: Any) -> Any:
    """Run ``coro`` as a task of its own in ``context`` (a process's claim lives in its tasks'
    context: two "daemons" in one test each get theirs)."""
    return asyncio.create_task(coro, context=context)


async def test_only_the_claim_holder_refreshes_and_a_lost_claim_writes_nothing(
    tmp_path: Path, sandbox: XeroSandbox
) -> None:
    url = new_database()
    holder, other = pg_store(tmp_path / "a", url, lease=2.0), pg_store(tmp_path / "b", url)
    a_side, b_side = contextvars.copy_context(), contextvars.copy_context()
    try:
        await authorise(holder, sandbox, "crm")
        fence = await in_context(a_side, holder.claim("crm"))  # the run on daemon A
        running = xero_connector(holder, sandbox, "crm")
        elsewhere = xero_connector(other, sandbox, "crm")
        await in_context(a_side, running.open())
        await in_context(b_side, elsewhere.open())
        sandbox.expire_access_tokens()
        # daemon B (a console check, say) does not refresh a grant daemon A is running with
        with pytest.raises(RetryLater, match=f"{fence.holder}, which runs this sync"):
            await in_context(b_side, elsewhere.check())
        assert sandbox.refreshes() == 0
        await in_context(a_side, running.check())  # A refreshes, writes under its claim
        assert sandbox.refreshes() == 1
        await in_context(b_side, elsewhere.check())  # B uses what A wrote
        assert sandbox.refreshes() == 1
        ((updated_by,),) = rows(url, "SELECT updated_by FROM oauth_token")
        assert updated_by == fence.holder

        # A freezes (its heartbeat too), its lease runs out and B takes the sync over
        assert holder.claims is not None
        holder.claims.held.clear()
        wait_until(
            lambda: (
                rows(url, "SELECT 1 FROM sync_claim WHERE expires_at < clock_timestamp()") or None
            ),
            60,
            "A's lease to expire",
        )
        taken = await in_context(b_side, other.claim("crm"))
        version = rows(url, "SELECT version FROM oauth_token")
        sandbox.expire_access_tokens()
        with pytest.raises(ClaimLost):
            await in_context(a_side, running.check())
        # A sent no refresh token and wrote nothing
        assert sandbox.refreshes() == 1
        assert rows(url, "SELECT version FROM oauth_token") == version
        await in_context(b_side, elsewhere.check())  # B, holding the claim now, refreshes
        assert sandbox.refreshes() == 2
        assert sandbox.state()["refresh_reuses"] == 0
        await in_context(b_side, other.unclaim(taken))
        await running.close()
        await elsewhere.close()
    finally:
        holder.close()
        other.close()


async def test_no_tokens_in_the_store_asks_for_syncd_auth(
    tmp_path: Path, sandbox: XeroSandbox
) -> None:
    store = pg_store(tmp_path / "a", new_database())
    try:
        connector = xero_connector(store, sandbox, "crm")
        with pytest.raises(NeedsReauth, match="not been authorised"):
            await connector.open()
        await connector.close()
    finally:
        store.close()


# --- the command line -----------------------------------------------------------------------


def _cli(config: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        [*SYNCD, "--config", str(config), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=180,
    )


def _config(tmp: Path, sandbox: XeroSandbox, store: str) -> Path:
    config = tmp / "config"
    (config / "syncs").mkdir(parents=True, exist_ok=True)
    (config / "syncd.toml").write_text(
        f'[daemon]\nstate_dir = "{tmp / "state"}"\n' + textwrap.dedent(store)
    )
    (config / "syncs" / "crm.toml").write_text(
        f'[a]\nconnector = "xero"\n{sandbox.toml()}\n'
        f'[b]\nconnector = "csv"\npath = "{tmp / "b.csv"}"\n'
    )
    return config


@pytest.mark.parametrize(
    ("key", "env", "message"),
    [
        (None, {}, "store.token_key: required with a PostgreSQL store when a sync keeps OAuth"),
        ('"${env:TK}"', {"TK": "not-a-fernet-key-at-all"}, "store.token_key: it is not a Fernet"),
        ('"${env:TK}"', {"TK": Fernet.generate_key().decode()}, "[store] token_key does not"),
    ],
)
async def test_a_missing_or_wrong_key_is_one_line_and_exit_2(
    tmp_path: Path, sandbox: XeroSandbox, key: str | None, env: dict[str, str], message: str
) -> None:
    url = new_database()
    store = pg_store(tmp_path / "seed", url)
    try:
        await authorise(store, sandbox, "crm")
    finally:
        store.close()
    table = f'[store]\nurl = "{url}"\n' + (f"token_key = {key}\n" if key else "")
    config = _config(tmp_path, sandbox, table)
    commands = [["migrate"], ["sync", "crm"], ["run"]]
    if "does not" not in message:
        commands.append(["check"])  # the config check says it too (it opens no database)
    for command in commands:
        result = _cli(config, *command, env=env)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
        assert KEY not in result.stderr + result.stdout
        for value in env.values():
            assert value not in result.stderr + result.stdout


def test_store_copy_moves_token_files_into_the_store_encrypted_and_back(
    tmp_path: Path,
) -> None:
    from syncd_xero.tokens import TokenFile, TokenSet

    source = tmp_path / "sqlite-state"
    Store(source).open()
    tokens = TokenSet(
        "sbx-at-access-token-xyz", time.time() + 1800, "sbx-rt-refresh-token-abc", time.time()
    )
    tokens.tenant_id, tokens.tenant_name = "t-1", "Demo Company (UK)"
    TokenFile(source / "oauth" / "xero-my-crm-a.json").save(tokens)
    url = new_database()
    env = {**os.environ, "TK": KEY}

    def copy(*args: str) -> Any:
        return subprocess.run(
            [*SYNCD, "store", "copy", *args], capture_output=True, text=True, env=env, timeout=120
        )

    refused = copy("--from", f"sqlite:{source}", "--to", url)
    assert refused.returncode == 2
    assert "1 OAuth token file(s)" in refused.stderr and "--token-key" in refused.stderr
    assert rows(url, "SELECT count(*) FROM oauth_token") == [(0,)]  # nothing half-copied

    done = copy("--from", f"sqlite:{source}", "--to", url, "--token-key", "${env:TK}")
    assert done.returncode == 0, done.stderr
    assert "oauth token files: 1 rows" in done.stdout
    ((name, sync, side, data),) = rows(url, "SELECT name, sync, side, data FROM oauth_token")
    assert (name, sync, side) == ("xero-my-crm-a", "my-crm", "a")
    assert "sbx-rt-refresh" not in data and "sbx-at-access" not in data
    assert json.loads(Fernet(KEY.encode()).decrypt(data.encode()))["refresh_token"] == (
        "sbx-rt-refresh-token-abc"
    )
    assert KEY not in done.stdout + done.stderr

    back = tmp_path / "back"
    unset = copy("--from", url, "--to", f"sqlite:{back}", "--token-key", "${env:UNSET_KEY}")
    assert unset.returncode == 2 and "UNSET_KEY is not set" in unset.stderr
    env["OTHER"] = Fernet.generate_key().decode()
    wrong = copy("--from", url, "--to", f"sqlite:{back}", "--token-key", "${env:OTHER}")
    assert wrong.returncode == 2
    assert "--token-key: [store] token_key does not decrypt" in wrong.stderr, wrong.stderr
    assert env["OTHER"] not in wrong.stderr and "Traceback" not in wrong.stderr
    assert not (back / "oauth").exists()
    returned = copy("--from", url, "--to", f"sqlite:{back}", "--token-key", "${env:TK}")
    assert returned.returncode == 0, returned.stderr
    again = TokenFile(back / "oauth" / "xero-my-crm-a.json").load()
    assert again is not None and again.refresh_token == "sbx-rt-refresh-token-abc"
    assert (back / "oauth" / "xero-my-crm-a.json").stat().st_mode & 0o077 == 0
    assert Store(back).path.exists()


# --- daemons --------------------------------------------------------------------------------


@pytest.fixture
def cluster(tmp_path: Path, sandbox: XeroSandbox) -> Iterator[XeroCluster]:
    c = XeroCluster(tmp_path, new_database(), KEY, lease=4.0)
    yield c
    c.close()


def test_a_token_refreshed_by_daemon_a_is_used_by_daemon_b_after_failover(
    cluster: XeroCluster, sandbox: XeroSandbox
) -> None:
    cluster.add_sync("crm", sandbox.toml())
    store = pg_store(cluster.root / "auth", cluster.url)
    try:
        asyncio.run(authorise(store, sandbox, "crm"))
    finally:
        store.close()
    first = cluster.start()

    def runs(daemon: Any) -> list[dict[str, Any]]:
        return [
            r for r in daemon.get("/api/v1/syncs/crm/runs")["runs"] if r["outcome"] != "running"
        ]

    # and its end recorded, so that the trigger below is not refused as "already running"
    wait_until(lambda: (runs(first) and first.not_running("crm")) or None, 120, "the first run")
    synced = (cluster.data / "crm-b.csv").read_text().splitlines()
    assert len(synced) > 5
    sandbox.expire_access_tokens()
    first.client().request("POST", "/api/v1/syncs/crm/trigger")
    wait_until(lambda: len(runs(first)) >= 2 or None, 120, "the second run")
    assert sandbox.refreshes() == 1  # daemon A refreshed, and wrote the new tokens
    first.kill()
    cluster.daemons.remove(first)

    second = cluster.start()
    sandbox.expire_access_tokens()
    wait_until(lambda: second.get("/api/v1/syncs/crm")["state"] != "running" or None, 60, "idle")
    second.client().request("POST", "/api/v1/syncs/crm/trigger")
    wait_until(lambda: len(runs(second)) >= 3 or None, 120, "a run on daemon B")
    # B refreshed with the refresh token A had written (a stale one fails: refresh_grace = 0)
    assert sandbox.refreshes() == 2
    assert sandbox.state()["refresh_reuses"] == 0
    assert all(r["outcome"] == "success" for r in runs(second)), runs(second)
    assert sorted((cluster.data / "crm-b.csv").read_text().splitlines()) == sorted(synced)
    for n in (1, 2):
        assert not (cluster.root / f"state-{n}" / "oauth").exists()
    for log in cluster.root.glob("daemon-*.log"):
        text = log.read_text()
        assert KEY not in text and "sbx-rt-" not in text and "sbx-at-" not in text
