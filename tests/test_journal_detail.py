"""The ``detail`` text of a journal row (issue 15): per app field its view key where the names
differ, the values before and the reasons of their own, as ``syncd changes`` and undo read them."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from syncd.engine.journal import detail

KEYS = st.sampled_from(["email", "first_name", "city", "phone", "tags", "title"])
NAMES = st.dictionaries(KEYS, st.sampled_from(["email", "EmailAddress", "City", "city", "Phone"]))
VALUES = st.none() | st.text(max_size=8) | st.lists(st.text(max_size=4), max_size=2)


@given(
    names=NAMES,
    keys=st.lists(KEYS, unique=True),
    before=st.none() | st.dictionaries(st.text(min_size=1, max_size=8), VALUES),
    reasons=st.dictionaries(KEYS, st.sampled_from(["rule action (a-to-b)", "conflict won"])),
)
def test_detail_holds_renamed_fields_values_before_and_own_reasons(
    names: dict[str, str],
    keys: list[str],
    before: dict[str, object] | None,
    reasons: dict[str, str],
) -> None:
    text = detail(names, keys, before, reasons)
    renamed = {names[k]: k for k in keys if k in names and names[k] != k}
    expected: dict[str, object] = {}
    if renamed:
        expected["k"] = renamed
    if before is not None:
        expected["b"] = before
    if reasons:
        expected["r"] = {names.get(k, k): why for k, why in reasons.items()}
    if not expected:
        assert text is None
    else:
        assert text is not None and json.loads(text) == expected
        # the same answer twice (the names' text is cached per set of renamed fields)
        assert detail(names, keys, before, reasons) == text
