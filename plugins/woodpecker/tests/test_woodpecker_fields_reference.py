"""The listing's fast prospect mapping and ``updated`` parsing give exactly what the plain ones
(kept here as the reference: the code as it was before it was written for speed) give."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from syncd_woodpecker.fields import (
    _LEGACY_NAMES,
    TEXT_FIELDS,
    parse_tags,
    parse_updated,
    prospect_data,
)

from syncd.connector import RawValue


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    text = value if isinstance(value, str) else str(value)
    return text if text.strip() else None


def reference_data(prospect: Mapping[str, Any]) -> dict[str, RawValue]:
    data: dict[str, RawValue] = {}
    for name in TEXT_FIELDS:
        value = prospect.get(name)
        if _text(value) is None:
            for legacy in _LEGACY_NAMES.get(name, ()):
                if _text(prospect.get(legacy)) is not None:
                    value = prospect.get(legacy)
                    break
        data[name] = _text(value)
    data["tags"] = parse_tags(prospect.get("tags"))
    for name in ("last_contacted", "last_replied"):
        value = prospect.get(name)
        for legacy in _LEGACY_NAMES.get(name, ()):
            value = value if value is not None else prospect.get(legacy)
        data[name] = _text(value)
    return data


def reference_updated(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    for candidate in (text, text.replace("Z", "+0000")):
        try:
            return datetime.strptime(candidate, "%Y-%m-%dT%H:%M:%S%z")
        except ValueError:
            pass
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.sampled_from(["", " ", "\n", "x", " Jane ", "ACTIVE", "#VC #NEW"]),
    st.text(max_size=5),
)
keys = [*TEXT_FIELDS, "tags", "last_contacted", "last_replied"]
keys += [legacy for names in _LEGACY_NAMES.values() for legacy in names]
prospects = st.fixed_dictionaries({}, optional={key: values for key in keys})
#: as the API answers: every value text (many of them empty), which the fast path maps
texts = st.one_of(st.sampled_from(["", " ", "\n", "x", " Jane ", "#VC #NEW", "\u2003"]), st.text())
text_prospects = st.fixed_dictionaries({}, optional={key: texts for key in keys})

stamps = st.one_of(
    st.builds(
        lambda d, sep, offset: d.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + offset,
        st.datetimes(datetime(1990, 1, 1), datetime(2100, 1, 1)),
        st.sampled_from(["T", " "]),
        st.sampled_from(["+0200", "-0330", "+0000", "Z", "", "+02:00", ".123+0100"]),
    ),
    st.sampled_from(["2016-9-3T5:2:7+0200", "2016-09-03", "garbage", " ", "2016-13-01T00:00:00Z"]),
    st.text(max_size=8),
    st.none(),
    st.integers(),
)


@settings(max_examples=400, deadline=None)
@given(prospects)
def test_the_fast_prospect_mapping_equals_the_reference(prospect: dict[str, Any]) -> None:
    fast = prospect_data(prospect)
    expected = reference_data(prospect)
    assert fast == expected
    assert list(fast) == list(expected)


@settings(max_examples=400, deadline=None)
@given(text_prospects)
def test_the_fast_mapping_of_text_only_prospects_equals_the_reference(
    prospect: dict[str, Any],
) -> None:
    fast = prospect_data(prospect)
    expected = reference_data(prospect)
    assert fast == expected
    assert list(fast) == list(expected)


@settings(max_examples=400, deadline=None)
@given(stamps)
def test_the_fast_updated_parsing_equals_the_reference(value: Any) -> None:
    fast, expected = parse_updated(value), reference_updated(value)
    assert fast == expected
    if fast is not None and expected is not None:
        assert fast.utcoffset() == expected.utcoffset()
