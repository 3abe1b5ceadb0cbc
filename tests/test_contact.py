"""Canonical contact normalisation and the IF/THEN rule operators (pure functions)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.config import Action, Condition, Rule
from syncd.contact import loosely_equal, normalise, normalise_email, normalise_phone
from syncd.engine.fields import value_hash
from syncd.engine.rules import apply_actions, condition_holds, matching_rules


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("020 7946 0958", "GB", "+442079460958"),
        ("+44 (0)20 7946 0958", "GB", "+442079460958"),
        ("(202) 555-0143", "US", "+12025550143"),
        ("+1 202 555 0143", "GB", "+12025550143"),
        ("call me maybe", "GB", "call me maybe"),
    ],
)
def test_phones_become_e164(raw: str, region: str, expected: str) -> None:
    assert normalise_phone(raw, region) == expected


def test_emails_are_trimmed_and_lower_cased() -> None:
    assert normalise_email("  Jane.Smith@Example.COM ") == "jane.smith@example.com"
    assert normalise_email("   ") is None


def test_text_and_tags() -> None:
    assert normalise("text", "  Zoë   Brontë ") == "Zoë Brontë"
    assert normalise("text", "") is None
    assert normalise("tags", ["vip", " vip", "", "lead"]) == frozenset({"vip", "lead"})
    assert normalise("tags", []) is None


@given(st.text(max_size=30))
def test_normalising_is_idempotent(text: str) -> None:
    for kind in ("text", "email", "phone"):
        once = normalise(kind, text)
        assert normalise(kind, once) == once


@given(st.text(alphabet="abcXYZ ", max_size=12))
def test_loose_equality_and_hashes_agree(text: str) -> None:
    value = normalise("text", text)
    upper = normalise("text", text.upper())
    assert loosely_equal(value, upper)
    assert (value is None) == (upper is None)
    if value is not None and upper is not None:
        assert value_hash(value) == value_hash(upper)


VALUES = {"email": "jane@acme.example", "tags": frozenset({"Customer", "vip"}), "city": "Leeds"}


@pytest.mark.parametrize(
    ("condition", "holds"),
    [
        (Condition("email", "is_set"), True),
        (Condition("title", "is_empty"), True),
        (Condition("city", "equals", "leeds"), True),
        (Condition("city", "not_equals", "York"), True),
        (Condition("tags", "contains", "customer"), True),
        (Condition("tags", "contains", "cust"), False),
        (Condition("email", "contains", "@acme"), True),
        (Condition("city", "in", ["York", "Leeds"]), True),
        (Condition("email", "matches", r"@acme\.example$"), True),
        (Condition("email", "matches", r"^bob"), False),
    ],
)
def test_condition_operators(condition: Condition, holds: bool) -> None:
    assert condition_holds(condition, VALUES) is holds


def test_rules_all_any_and_actions() -> None:
    both = Rule((Condition("city", "equals", "York"), Condition("email", "is_set")), (), "all")
    either = Rule(
        (Condition("city", "equals", "York"), Condition("email", "is_set")),
        (
            Action("add_tag", "tags", "from-a"),
            Action("remove_tag", "tags", "VIP"),
            Action("set", "title", "Customer"),
        ),
        "any",
    )
    assert matching_rules((both,), VALUES) is None
    matched = matching_rules((both, either), VALUES)
    assert matched == [either]
    result = apply_actions(matched, dict(VALUES))
    assert result["tags"] == frozenset({"Customer", "from-a"})
    assert result["title"] == "Customer"
    assert matching_rules((), VALUES) == []
