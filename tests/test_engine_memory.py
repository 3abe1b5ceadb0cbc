"""The engine's compact structures (issue 19): they must say exactly what the plain ones said."""

from __future__ import annotations

import gc
import json

from hypothesis import given
from hypothesis import strategies as st

from syncd.engine.executor import cyclic_gc_paused
from syncd.engine.planner import Holders
from syncd.store import encode_base

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
