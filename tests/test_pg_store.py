"""The store on PostgreSQL (issue 17): migrations from an empty database and from today's
schema, ``syncd migrate --check``, ``syncd store copy`` both ways (refusing a non-empty
target), the ``[store]`` settings, and fencing: a commit under a lost claim raises."""

from __future__ import annotations

import asyncio
import os
import subprocess
import textwrap
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pg_support import new_database, pg_settings
from playhouse.migrations import Runner

from syncd.engine.executor import RunOptions, run_sync
from syncd.plugins import Plugins
from syncd.store import MIGRATIONS, ClaimLost, Store, StoreSettings
from syncd.store.engines import FENCE, FencedPostgresqlDatabase
from syncd.store.lock import SyncBusy
from syncd.store.models import database
from syncd.testing import memory
from syncd.testing.runner import SYNCD

TODAY = "0002_journal"  # the last migration before this issue's


def _kinds() -> list[str]:
    return ["sqlite", "postgresql"]


def _store(kind: str, tmp: Path) -> Store:
    return Store(tmp / "state", pg_settings() if kind == "postgresql" else None)


@pytest.mark.parametrize("kind", _kinds())
def test_migrations_from_an_empty_database_and_from_todays_schema(
    kind: str, tmp_path: Path
) -> None:
    fresh = _store(kind, tmp_path / "fresh")
    assert "0010_claims" in fresh.pending_migrations()
    fresh.open()
    assert fresh.pending_migrations() == []
    assert "sync_claim" in fresh.db.get_tables()
    fresh.close()

    old = _store(kind, tmp_path / "old")
    old.state_dir.mkdir(parents=True, exist_ok=True)
    database.initialize(old.db)
    old.db.connect()
    Runner(old.db, directory=str(MIGRATIONS)).up(target=TODAY)
    old.db.execute_sql(
        "INSERT INTO link (sync, a_id, b_id, state, updated_at) VALUES (?, ?, ?, ?, ?)",
        ("s", "a1", "b1", "linked", "2026-01-01 00:00:00"),
    )
    assert {"0010_claims", "0011_tokens"} <= set(old.pending_migrations())
    old.close()
    again = Store(old.state_dir, old.settings)
    again.open()
    assert again.pending_migrations() == []
    assert [r.a_id for r in again.load_links("s")] == ["a1"]
    again.close()


def _cli(config: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        [*SYNCD, "--config", str(config), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def _config(tmp: Path, store: str = "") -> Path:
    config = tmp / "config"
    (config / "syncs").mkdir(parents=True, exist_ok=True)
    (config / "syncd.toml").write_text(
        textwrap.dedent(f'[daemon]\nstate_dir = "{tmp / "state"}"\n') + textwrap.dedent(store)
    )
    return config


def test_migrate_check_reports_pending_migrations_on_postgresql(tmp_path: Path) -> None:
    url = new_database()
    config = _config(tmp_path, f'[store]\nurl = "{url}"\n')
    check = _cli(config, "migrate", "--check")
    assert check.returncode == 1, check.stderr
    assert "pending: 0001_initial" in check.stdout and "pending: 0010_claims" in check.stdout
    done = _cli(config, "migrate")
    assert done.returncode == 0, done.stderr
    assert "applied: 0010_claims" in done.stdout
    again = _cli(config, "migrate", "--check")
    assert again.returncode == 0 and "up to date" in again.stdout


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[store]\nurl = "mysql://x/y"\n', "store.url: expected postgresql://"),
        ('[store]\nurl = "postgresql://u:hunter2@h/db"\n', "store.password"),
        ('[store]\nlease_timeout = "0s"\n', "store.lease_timeout"),
        ("[store]\nport = 5432\n", "store.port"),
        ("[store]\nconnections = 0\n", "store.connections: expected a whole number from 1"),
        ('[store]\nconnections = "4"\n', "store.connections"),
    ],
)
def test_bad_store_settings_are_one_line_and_exit_2(
    tmp_path: Path, table: str, message: str
) -> None:
    result = _cli(_config(tmp_path, table), "migrate", "--check")
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr and "hunter2" not in result.stderr


def _tables(url_or_store: Store) -> dict[str, list[tuple[Any, ...]]]:
    store = url_or_store
    found = {}
    for table in sorted(store.db.get_tables()):
        if table in ("schema_migration", "sync_claim"):
            continue
        cols = [c.name for c in store.db.get_columns(table)]
        order = "id" if "id" in cols else cols[0]
        rows = store.db.execute_sql(f'SELECT * FROM "{table}" ORDER BY {order}').fetchall()
        found[table] = [tuple(_plain(v) for v in row) for row in rows]
    return found


def _plain(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if hasattr(value, "isoformat"):
        return value.isoformat(" ")
    return value


async def test_store_copy_round_trip_keeps_links_and_history_and_refuses_a_full_target(
    tmp_path: Path, plugins: Plugins
) -> None:
    from test_engine import memory_sync

    a, b = memory.app("mem-a"), memory.app("mem-b")
    for i in range(5):
        a.add({"email": f"p{i}@x.com", "city": "Leeds"})
    b.add({"email": "q@x.com", "city": "York"})
    sync = memory_sync(tmp_path, plugins)
    source = Store(tmp_path / "state")
    await source.aopen()
    assert (await run_sync(sync, source, RunOptions())).outcome == "success"
    a.add({"email": "late@x.com"})
    assert (await run_sync(sync, source, RunOptions())).outcome == "success"
    await source.aclose()

    url = new_database()
    config = _config(tmp_path)
    to_pg = _cli(config, "store", "copy", "--from", f"sqlite:{tmp_path / 'state'}", "--to", url)
    assert to_pg.returncode == 0, to_pg.stderr
    assert "link: 7 rows" in to_pg.stdout and "run: 2 rows" in to_pg.stdout
    refused = _cli(config, "store", "copy", "--from", f"sqlite:{tmp_path / 'state'}", "--to", url)
    assert refused.returncode == 2
    assert "not empty" in refused.stderr and "Traceback" not in refused.stderr
    back = tmp_path / "back" / "syncd.db"
    to_sqlite = _cli(config, "store", "copy", "--from", url, "--to", f"sqlite:{back}")
    assert to_sqlite.returncode == 0, to_sqlite.stderr

    first = Store(tmp_path / "state")
    first.open()
    pg = Store(tmp_path / "x", StoreSettings(url=url))
    pg.open()
    second = Store(back.parent)
    second.open()
    try:
        original = _tables(first)
        assert original["link"] and original["run"]
        assert _tables(second) == original
        assert {t: len(r) for t, r in _tables(pg).items()} == {
            t: len(r) for t, r in original.items()
        }
        # the copy on PostgreSQL goes on syncing: new ids follow the copied ones
        a.add({"email": "after@x.com"})
        await pg.aopen()
        assert (await run_sync(sync, pg, RunOptions())).outcome == "success"
        assert len(pg.load_links(sync.name)) == 8
    finally:
        first.close()
        await pg.aclose()
        second.close()


async def test_a_commit_under_a_lost_claim_raises_and_writes_nothing(tmp_path: Path) -> None:
    settings = pg_settings(lease=1.5)
    first = Store(tmp_path / "one", settings)
    second = Store(tmp_path / "two", StoreSettings(url=settings.url, lease_timeout=1.5))
    await first.aopen()
    await second.aopen()
    try:
        # each store stands for a process: the claim a call writes under is set explicitly
        mine = await first.claim("s")
        FENCE.set(None)
        with pytest.raises(SyncBusy):
            await second.claim("s")
        FENCE.set(mine)
        await first.run(first.update_state, "s", cursor_a="mine")
        FENCE.set(None)
        # the first process freezes: its heartbeat stops, its lease runs out
        assert first.claims is not None
        first.claims.close()

        async def taken() -> bool:
            try:
                await second.claim("s")
            except SyncBusy:
                FENCE.set(None)
                return False
            return True

        for _ in range(10_000):
            if await taken():
                break
            await second.run(second.ping)  # a round trip: waits on the database, not a clock
        await second.run(second.update_state, "s", cursor_a="successor")
        successor = FENCE.get()
        FENCE.set(mine)
        with pytest.raises(ClaimLost):
            await first.run(first.update_state, "s", cursor_a="stale")
        with pytest.raises(ClaimLost):
            await first.run(first.set_value, "k", "stale")
        FENCE.set(successor)
        assert (await second.run(second.get_state, "s")).cursor_a == "successor"
        assert await second.run(second.get_value, "k") is None
        claims = await second.run(second.live_claims)
        assert second.claims is not None and claims["s"].holder == second.claims.holder
    finally:
        await first.aclose()
        await second.aclose()


async def test_one_process_commits_of_two_syncs_side_by_side(tmp_path: Path) -> None:
    """On PostgreSQL a process's store calls go over several connections: one sync's long
    transaction does not hold up another sync's commit (with one connection, 30 small syncs
    of one daemon queued their commits behind each other)."""
    settings = pg_settings()
    store = Store(tmp_path / "state", settings)
    await store.aopen()
    released = threading.Event()
    try:

        def long_commit() -> None:
            with store.db.atomic():
                store.set_value("a", "1")
                released.wait(120)

        first = asyncio.create_task(store.run(long_commit))
        # the other sync's commit goes through while the first transaction is still open
        await asyncio.wait_for(store.run(store.set_value, "b", "2"), 60)
        assert settings.url is not None
        with psycopg.connect(settings.url, autocommit=True) as conn:
            seen = conn.execute("SELECT key FROM key_value ORDER BY key").fetchall()
        assert seen == [("b",)]
        released.set()
        await first
        assert await store.run(store.get_value, "a") == "1"
    finally:
        released.set()
        await store.aclose()
    # every connection of the store was closed with it
    assert isinstance(store.db, FencedPostgresqlDatabase)
    assert store.db._connections == []
