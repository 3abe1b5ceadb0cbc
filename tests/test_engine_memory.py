"""The engine's compact structures (issue 19): they must say exactly what the plain ones said."""

from __future__ import annotations

import gc
import json
import os
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from syncd.engine.executor import cyclic_gc_paused, release_memory
from syncd.engine.planner import Holders
from syncd.store import LinkRow, Store, encode_base

texts = st.text(max_size=12)


@given(st.dictionaries(texts, texts, max_size=8))
def test_encode_base_writes_what_the_json_encoder_writes(base: dict[str, str]) -> None:
    assert encode_base(base) == json.dumps(base, separators=(",", ":"))
    assert json.loads(encode_base(base) or "") == base


def test_encode_base_of_nothing_is_none() -> None:
    assert encode_base(None) is None
    assert encode_base({}) == "{}"


@given(st.lists(st.tuples(st.booleans(), st.sampled_from("xyz"), st.sampled_from("abcd"))))
def test_holders_hold_what_a_dict_of_lists_holds(ops: list[tuple[bool, str, str]]) -> None:
    """A single holder kept as its id, several as a list: the same answers as a dict of lists
    (``remove`` forgets one holder, as ``list.remove`` does)."""
    holders = Holders()
    plain: dict[str, list[str]] = {}
    for add, key, rid in ops:
        if add:
            holders.add(key, rid)
            plain.setdefault(key, []).append(rid)
        elif rid in plain.get(key, []):
            holders.remove(key, rid)
            plain[key].remove(rid)
        else:
            holders.remove(key, rid)  # not a holder: nothing happens
        for k in "xyz":
            assert holders.get(k) == plain.get(k, [])


def test_the_collector_runs_again_after_a_run() -> None:
    assert gc.isenabled()
    with cyclic_gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


@given(st.lists(st.sampled_from(["0x1f", "1f", "01f", "a" * 12, "0" * 12, "A" * 12, "0" * 11])))
def test_holders_keep_keys_apart_that_spell_the_same_number(keys: list[str]) -> None:
    """Only value hashes become numbers: other texts that spell the same number stay apart."""
    holders = Holders()
    for i, key in enumerate(keys):
        holders.add(key, str(i))
    for key in set(keys):
        assert holders.get(key) == [str(i) for i, k in enumerate(keys) if k == key]


def test_a_value_hash_is_kept_as_a_number() -> None:
    from syncd.engine.fields import value_hash
    from syncd.engine.planner import _compact

    assert _compact(value_hash("ann@example.com")) == int(value_hash("ann@example.com"), 16)
    assert _compact("ann@example.com") == "ann@example.com"


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_memory_a_run_freed_goes_back_to_the_system() -> None:
    """glibc keeps freed heap pages (here: 100 MB of 2 KB blocks, freed under one still in use
    at the top of the heap); ``release_memory``, called at the end of every run, returns them."""
    blocks = [bytearray(2048) for _ in range(50_000)]
    keep = bytearray(2048)
    del blocks
    freed = _rss_mb()
    release_memory()
    assert _rss_mb() < freed - 50
    del keep


def test_a_rebuilt_link_index_says_what_the_table_says_with_one_string_per_state(
    tmp_path: Path,
) -> None:
    """Another process wrote links: the index is read again from the table (the old one let go
    first), and its 150,000 rows at a first merge's end share a handful of state strings."""
    ours, theirs = Store(tmp_path / "state"), Store(tmp_path / "state")
    ours.open()
    theirs.open()
    try:
        assert ours.load_link_index("s").total == 0
        states = ["linked", "seen", "gone_a", "linked", "linked", "gone_b"]
        rows = [
            LinkRow(None, f"a{i}", f"b{i}", state, None, None, f"fa{i}", f"fb{i}")
            for i, state in enumerate(states)
        ]
        theirs.save_links("s", rows)
        index = ours.load_link_index("s")
        assert index.total == len(states)
        assert index.linked == 3
        assert index.linked_on == {"a": 3, "b": 3}
        # a deleted side's fingerprint never counts as unchanged
        assert index.fps["a"] == {f"a{i}": None if i == 2 else f"fa{i}" for i in range(6)}
        assert index.fps["b"] == {f"b{i}": None if i == 5 else f"fb{i}" for i in range(6)}
        cached = ours._link_indexes["s"].rows
        assert {link_id: row[2] for link_id, row in cached.items()} == {
            row.id: row.state for row in rows
        }
        assert len({id(row[2]) for row in cached.values()}) == len(set(states))
    finally:
        ours.close()
        theirs.close()


@given(st.one_of(st.none(), st.just("null"), st.just(" null "), st.dictionaries(texts, texts)))
def test_has_base_says_whether_the_base_decodes_to_something(base: object) -> None:
    """The planner asks ``has_base`` of every changed pair instead of decoding the base."""
    raw = base if base is None or isinstance(base, str) else encode_base(base)  # type: ignore[arg-type]
    link = LinkRow(1, "a1", "b1", base_a_json=raw, base_b_json=raw)
    for side in ("a", "b"):
        assert link.has_base(side) == (link.base(side) is not None)
