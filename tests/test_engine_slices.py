"""New records are planned and written a slice at a time (a first merge holds only a slice of
plans, and lets each slice's records go once written). Slicing must change nothing a user sees:
the same links, records, reports and cursors as one slice for everything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pg_support import store_for
from support import memory_sync

from syncd.engine import executor
from syncd.engine.executor import RunOptions, RunResult, run_sync
from syncd.plugins import Plugins
from syncd.store import Store
from syncd.testing import memory
from syncd.testing.memory import app


async def run(sync: Any, store: Store, **options: Any) -> RunResult:
    return await run_sync(sync, store, RunOptions(**options))


def populate() -> None:
    a, b = app("mem-a"), app("mem-b")
    for i in range(12):
        a.add({"email": f"p{i}@x.com", "first_name": f"A{i}", "city": "Leeds"})
    for i in range(0, 12, 3):  # every third matches a record of a, with other values
        b.add({"email": f"P{i}@x.com", "last_name": f"B{i}", "city": "York"})
    for i in range(5):
        b.add({"email": f"only-b{i}@x.com", "first_name": f"O{i}"})
    a.add({"email": "twice@x.com"})
    a.add({"email": "TWICE@x.com"})  # ambiguous on a
    b.add({"email": "twice@x.com"})
    a.add({"first_name": "No email"})  # excluded
    b.add({"email": "bad-one@x.com"})  # refused by a
    a.refuse_marker = "bad-"


def outcome(store: Store, result: RunResult, seen: list[tuple[int, int]]) -> dict[str, Any]:
    return {
        "counts": result.counts,
        "apps": {
            side: sorted(
                sorted((k, str(v)) for k, v in r.items())
                for r in app(f"mem-{side}").live().values()
            )
            for side in "ab"
        },
        "links": sorted((k.a_id or "", k.b_id or "", k.state) for k in store.load_links("mem")),
        "issues": sorted((i["side"], i["record_id"], i["kind"]) for i in store.list_issues("mem")),
        "state": {
            key: getattr(store.get_state("mem"), key) is not None
            for key in ("cursor_a", "cursor_b", "initialized_at")
        },
        "progress_end": seen[-1][0] == seen[-1][1] if seen else None,
    }


async def merge_with(
    slice_size: int, tmp_path: Path, plugins: Plugins, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    memory.reset()
    populate()
    monkeypatch.setattr(executor, "NEW_RECORDS_SLICE", slice_size)
    store = store_for(tmp_path / f"state-{slice_size}")
    store.open()
    try:
        sync = memory_sync(
            tmp_path / str(slice_size),
            plugins,
            a_settings="incremental = true",
            b_settings="incremental = true",
        )
        seen: list[tuple[int, int]] = []
        result = await run(sync, store, progress=lambda done, total: seen.append((done, total)))
        return outcome(store, result, seen)
    finally:
        store.close()


async def test_a_sliced_first_merge_ends_as_one_slice_does(
    tmp_path: Path, plugins: Plugins, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = await merge_with(10_000, tmp_path, plugins, monkeypatch)
    counts = whole["counts"]
    assert (counts["linked"], counts["created_a"], counts["created_b"]) == (4, 5, 8)
    # both of a's twice@ records, and b's, which matches two; a's record without email; the
    # create refused by a
    assert (counts["ambiguous"], counts["excluded"], counts["failed"]) == (3, 1, 1)
    for size in (1, 2, 7):
        assert await merge_with(size, tmp_path, plugins, monkeypatch) == whole, size


def tick_past_the_cursor_overlap() -> None:
    clock = memory.MemoryApp()
    for _ in range(500):  # the overlap is 120 ticks
        clock.tick()


async def test_a_record_refused_in_a_sliced_merge_is_listed_again(
    tmp_path: Path, plugins: Plugins, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record let go after its slice was written still holds the cursor back when its write
    failed, so the next incremental run lists it again and retries it."""
    monkeypatch.setattr(executor, "NEW_RECORDS_SLICE", 1)
    a, b = app("mem-a"), app("mem-b")
    for i in range(4):
        a.add({"email": f"early{i}@x.com"})
    a.add({"email": "bad@x.com"})
    tick_past_the_cursor_overlap()
    for i in range(4):
        a.add({"email": f"late{i}@x.com"})  # updated well after the refused record
    b.refuse_marker = "bad"
    sync = memory_sync(
        tmp_path, plugins, a_settings="incremental = true", b_settings="incremental = true"
    )
    first = await run(sync, store)
    assert (first.counts["created_b"], first.counts["failed"]) == (8, 1)
    b.refuse_marker = None
    store.db.execute_sql("UPDATE record_issue SET next_attempt_at = '2000-01-01 00:00:00'")
    tick_past_the_cursor_overlap()
    second = await run(sync, store)
    assert second.counts["created_b"] == 1
    assert "bad@x.com" in {r["email"] for r in b.live().values()}
