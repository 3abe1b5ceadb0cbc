"""The in-memory link index: kept up to date by this store's commits, rebuilt after another
process wrote."""

from __future__ import annotations

from pathlib import Path

from syncd.store import LinkRow, Store


def fresh_index(path: Path) -> tuple[object, ...]:
    store = Store(path)
    store.open()
    try:
        index = store.load_link_index("s")
        return (index.fps, index.total, index.linked, index.linked_on)
    finally:
        store.close()


def as_tuple(store: Store) -> tuple[object, ...]:
    index = store.load_link_index("s")
    return (index.fps, index.total, index.linked, index.linked_on)


def test_commits_keep_the_index_up_to_date(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.open()
    assert as_tuple(store) == ({"a": {}, "b": {}}, 0, 0, {"a": False, "b": False})
    one = LinkRow(None, "a1", "b1", "linked", None, None, "fa1", "fb1")
    two = LinkRow(None, "a2", None, "seen", None, None, "fa2", None)
    store.commit_outcomes("s", links=[one, two])
    assert as_tuple(store) == fresh_index(tmp_path)
    # a tombstone's deleted side is never taken as unchanged; a record id may change
    one.state, one.a_id = "gone_a", "a9"
    store.commit_outcomes("s", links=[one], drop_links=[two.id or 0])
    kept = as_tuple(store)
    assert kept == fresh_index(tmp_path)
    assert kept[0] == {"a": {"a9": None}, "b": {"b1": "fb1"}}
    store.close()


def test_another_processs_writes_are_seen(tmp_path: Path) -> None:
    mine, theirs = Store(tmp_path), Store(tmp_path)
    mine.open()
    theirs.open()
    assert mine.load_link_index("s").total == 0
    theirs.commit_outcomes("s", links=[LinkRow(None, "a1", "b1", "linked", None, None, "x", "y")])
    assert mine.load_link_index("s").fps["a"] == {"a1": "x"}
    mine.close()
    theirs.close()
