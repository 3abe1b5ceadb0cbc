"""``Connector.listing_cursor``: a cursor of the app's own (a WebDAV sync-token) stored by the
engine as the side's cursor once the run committed, handed back to the next incremental
listing, and kept where it was while a record listed in the run failed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support import memory_sync

from syncd.engine.executor import RunOptions, run_sync
from syncd.plugins import Plugins
from syncd.store import Store
from syncd.testing import memory
from syncd.testing.memory import app


@pytest.fixture
def tokens(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """The memory connector with a token cursor: ``tok<tick>``, the first tick after it listed,
    and the cursors it was handed."""
    handed: list[str | None] = []
    listing = memory.MemoryConnector.list_records

    def list_records(self: memory.MemoryConnector, cursor: str | None) -> Any:
        handed.append(cursor)
        self.token = f"tok{memory._last_tick() + 1}"
        return listing(self, cursor[3:] if cursor else None)

    monkeypatch.setattr(memory.MemoryConnector, "list_records", list_records)
    monkeypatch.setattr(
        memory.MemoryConnector, "listing_cursor", lambda self: getattr(self, "token", None)
    )
    return handed


async def test_the_apps_own_cursor_is_stored_handed_back_and_held_while_a_record_failed(
    tmp_path: Path, plugins: Plugins, store: Store, tokens: list[str | None]
) -> None:
    a, b = app("mem-a"), app("mem-b")
    a.add({"email": "one@x.com"})
    sync = memory_sync(
        tmp_path, plugins, a_settings="incremental = true", b_settings="incremental = true"
    )
    await run_sync(sync, store, RunOptions())  # first run: in full
    first = store.get_state("mem").cursor_a
    assert first is not None and first.startswith("tok"), first

    a.add({"email": "two@x.com"})
    tokens.clear()
    second = await run_sync(sync, store, RunOptions())
    assert tokens[0] == first  # side a listed from the token, not from a time
    assert second.counts["read_a"] == 1 and second.counts["created_b"] == 1, second.counts
    after_second = store.get_state("mem").cursor_a
    assert after_second is not None and after_second != first

    b.refuse_marker = "bad"
    a.add({"email": "bad@x.com"})
    third = await run_sync(sync, store, RunOptions())
    assert third.counts["failed"] == 1
    # the refused record must be listed again: side a's token stays where it was
    assert store.get_state("mem").cursor_a == after_second
    b.refuse_marker = None
    store.db.execute_sql("UPDATE record_issue SET next_attempt_at = '2000-01-01 00:00:00'")
    await run_sync(sync, store, RunOptions())
    assert {r["email"] for r in b.live().values()} == {"one@x.com", "two@x.com", "bad@x.com"}
