"""Value conversions: tags, timestamps, cursors, legacy field names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from syncd_woodpecker.connector import WoodpeckerConnector
from syncd_woodpecker.fields import (
    FIELDS,
    cursor_for,
    format_tags,
    parse_tags,
    parse_updated,
    prospect_data,
)

from syncd.connector import ConnectorConfigError, ConnectorContext
from syncd.contact import is_canonical


def test_woodpecker_tags_string_to_tuple_and_back() -> None:
    assert parse_tags("#VC #SECONDARYEMAIL") == ("VC", "SECONDARYEMAIL")
    assert parse_tags("  #VC   #VC NEW ") == ("VC", "NEW")
    assert parse_tags("") is None and parse_tags(None) is None
    assert format_tags(frozenset({"vc", "New"})) == "#New #vc"
    assert format_tags(("#VC", "key account")) == "#VC #key_account"
    assert format_tags(None) == ""


def test_woodpecker_updated_with_offset_without_colon() -> None:
    parsed = parse_updated("2016-09-03T15:02:57+0200")
    assert parsed == datetime(2016, 9, 3, 13, 2, 57, tzinfo=UTC)
    assert parsed is not None and parsed.utcoffset() == timedelta(hours=2)
    assert parse_updated("2016-09-03T15:02:57+02:00") == parsed
    assert parse_updated("") is None and parse_updated(None) is None
    assert parse_updated("yesterday") is None


def test_woodpecker_cursor_goes_back_one_second() -> None:
    watermark = datetime(2026, 5, 1, 12, 0, 0, 500_000, tzinfo=timezone(timedelta(hours=2)))
    assert cursor_for(watermark) == "2026-05-01T09:59:59+0000"


def test_woodpecker_reads_legacy_field_names() -> None:
    data = prospect_data(
        {"id": 1, "email": "a@b.co", "snipet2": "old", "snipper9": "typo", "last replied": "x"}
    )
    assert data["snippet2"] == "old"
    assert data["snippet9"] == "typo"
    assert data["last_replied"] == "x"


def test_woodpecker_default_mapping_is_canonical() -> None:
    mapped = {spec.name: spec.canonical for spec in FIELDS if spec.canonical}
    assert all(is_canonical(c) for c in mapped.values())
    assert mapped["state"] == "region" and mapped["address"] == "street"
    assert mapped["snippet15"] == "custom.snippet15"
    assert mapped["industry"] == "custom.industry"
    assert "status" not in mapped


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"api_key": ""}, "api_key"),
        ({"api_key": "k", "batch_size": 20_001}, "batch_size"),
        ({"api_key": "k", "per_page": 0}, "per_page"),
        ({"api_key": "k", "base_url": "api.woodpecker.co"}, "base_url"),
    ],
)
def test_woodpecker_settings_are_checked(settings: dict[str, object], key: str) -> None:
    with pytest.raises(ConnectorConfigError) as caught:
        WoodpeckerConnector(settings, ConnectorContext(sync="s", side="a", state_dir=None))  # type: ignore[arg-type]
    assert caught.value.key == key


def test_woodpecker_batch_size_sets_capabilities() -> None:
    connector = WoodpeckerConnector(
        {"api_key": "k", "batch_size": 250},
        ConnectorContext(sync="s", side="a", state_dir=None),  # type: ignore[arg-type]
    )
    assert connector.capabilities.create_batch_size == 250
    assert connector.capabilities.update_batch_size == 250
    assert WoodpeckerConnector.capabilities.create_batch_size == 5_000
