"""In-process runs over the in-memory apps, for the journal and undo tests (test_engine_journal,
test_undo): a clean run, a run (or an undo) stopped dead at a crash point, the apps' records by
email, and the journal's unsettled entries as the next run reads them.

The store is the current test's kind (:func:`pg_support.store_for`: SQLite in ``state`` unless
the test runs on PostgreSQL), opened afresh from disk for every run.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_support import store_for

from syncd.config import SyncConfig
from syncd.engine import executor
from syncd.engine.executor import CrashCounter, RunOptions, RunResult, run_sync
from syncd.testing.memory import app


class Crash(BaseException):
    """A process dying at a crash point (not an Exception: nothing may catch it as an error)."""


async def sync_once(sync: SyncConfig, state: Path) -> RunResult:
    """One run to its end, which must succeed."""
    store = store_for(state)
    await store.aopen()
    try:
        result = await run_sync(sync, store, RunOptions())
    finally:
        await store.aclose()
    assert result.outcome == "success", result.message
    return result


@contextlib.contextmanager
def crash_at(where: str, count: int) -> Iterator[None]:
    """What the block runs dies at its ``count``th crash point of kind ``where`` (see
    ``syncd.engine.executor.crash_hook``: counted, never timed); the block must get there."""

    def die() -> None:
        raise Crash()

    executor.crash_hook = CrashCounter(count, where, die)
    try:
        with pytest.raises(Crash):
            yield
    finally:
        executor.crash_hook = None


async def crashed(sync: SyncConfig, state: Path, where: str, count: int) -> None:
    """A run stopped dead at its ``count``th crash point of kind ``where``."""
    store = store_for(state)
    await store.aopen()
    try:
        with crash_at(where, count):
            await run_sync(sync, store, RunOptions())
    finally:
        await store.aclose()


def by_email(account: str) -> dict[str, tuple[str, dict[str, object]]]:
    """The live records of a memory app by email: (record id, record)."""
    return {str(r["email"]): (rid, r) for rid, r in app(account).live().items()}


UNSETTLED_ROWS = (
    "SELECT side, kind, sent FROM journal WHERE outcome IN ('pending', 'failed') ORDER BY id"
)


def journal_rows(state: Path) -> list[tuple[str, str, str]]:
    """(side, kind, sent) of the journal entries a crash left unsettled, oldest first."""
    store = store_for(state)
    if store.shared:
        store.open()
        try:
            return [tuple(r) for r in store.db.execute_sql(UNSETTLED_ROWS).fetchall()]
        finally:
            store.close()
    db = sqlite3.connect(state / "syncd.db")
    try:
        return db.execute(UNSETTLED_ROWS).fetchall()
    finally:
        db.close()
