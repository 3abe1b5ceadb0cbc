"""The pieces of the API that take hostile input or shape its output, on their own."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from syncd.daemon.api import token_matches
from syncd.daemon.openapi import TIME_PATTERN
from syncd.timefmt import issue_json, rfc3339

TIME = re.compile(TIME_PATTERN)
TOKEN = "k3Jx9_secret-token-value-0123456789"


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.none()
    ),
    st.integers(min_value=-14 * 60, max_value=14 * 60),
)
def test_rfc3339_is_utc_to_the_second_with_z_from_any_datetime(
    naive: datetime, offset_minutes: int
) -> None:
    as_utc = naive.replace(tzinfo=UTC)
    expected = as_utc.replace(microsecond=0)
    zone = timezone(timedelta(minutes=offset_minutes))
    for value in (naive, as_utc, as_utc.astimezone(zone), naive.isoformat(), as_utc.isoformat()):
        text = rfc3339(value)
        assert text is not None and TIME.match(text), (value, text)
        # fractions are dropped, never rounded up past the moment
        assert datetime.fromisoformat(text.replace("Z", "+00:00")) == expected


def test_rfc3339_of_the_stores_strings_and_none() -> None:
    assert rfc3339(None) is None
    assert rfc3339("2026-12-01T21:26:54.427616+00:00") == "2026-12-01T21:26:54Z"
    assert rfc3339("2026-12-01T21:26:54Z") == "2026-12-01T21:26:54Z"
    assert rfc3339(
        datetime(2026, 12, 1, 22, 26, 54, 999999, tzinfo=timezone(timedelta(hours=1)))
    ) == ("2026-12-01T21:26:54Z")
    issue = {"email": "a@example.com", "first_seen": "2026-12-01T21:26:47.427616+00:00"}
    issue |= {"last_seen": "2026-12-01T21:26:48+00:00", "next_attempt_at": None}
    assert issue_json(issue) == {
        "email": "a@example.com",
        "first_seen": "2026-12-01T21:26:47Z",
        "last_seen": "2026-12-01T21:26:48Z",
        "next_attempt_at": None,
    }


def header_as_aiohttp_decodes_it(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


@given(st.binary(max_size=80), st.binary(max_size=8), st.binary(max_size=8))
def test_token_matches_takes_any_bytes_and_only_the_token(
    raw: bytes, before: bytes, after: bytes
) -> None:
    # never raises, whatever the bytes; true only with the token itself after the scheme
    if token_matches(header_as_aiohttp_decodes_it(raw), TOKEN):
        assert raw[:7].lower() == b"bearer " and TOKEN.encode() in raw
    padded = header_as_aiohttp_decodes_it(b"Bearer " + before + TOKEN.encode() + after)
    assert token_matches(padded, TOKEN) is (padded[7:].strip() == TOKEN)


@given(st.text(max_size=40))
def test_token_matches_never_raises_on_any_text(text: str) -> None:
    # lone surrogates included: they are how bytes that are not UTF-8 arrive
    assert not token_matches(text, TOKEN) or TOKEN in text
    assert token_matches(f"Bearer {TOKEN}{text}", TOKEN) is (text.strip() == "")


def test_token_matches_the_scheme_in_any_case_and_never_an_empty_token() -> None:
    assert token_matches(f"Bearer {TOKEN}", TOKEN)
    assert token_matches(f"bearer {TOKEN}", TOKEN)
    assert token_matches(f"BEARER   {TOKEN}  ", TOKEN)
    assert not token_matches(f"Basic {TOKEN}", TOKEN)
    assert not token_matches(TOKEN, TOKEN)
    assert not token_matches("Bearer ", "")
    assert not token_matches("Bearer \udcff", TOKEN)
