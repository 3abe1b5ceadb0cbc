"""Building one Salesfire customer from the connector's fields, and the rules checked first."""

from __future__ import annotations

import pytest
from syncd_salesfire.payload import Defaults, InvalidCustomer, build_customer, natural_key

DEFAULTS = Defaults(types=("MARKETING",), channels=("EMAIL", "SMS"), update_existing=True)


def test_full_customer_in_salesfire_shape() -> None:
    customer = build_customer(
        {
            "email": "Ada@Example.com",
            "mobile_number": "07700 900123",
            "name": "Ada Lovelace",
            "date_of_birth": "1815-12-10",
            "custom.loyalty_tier": "gold",
            "types": "marketing, transactional",
        },
        DEFAULTS,
    )
    assert customer == {
        "email": "Ada@Example.com",
        "mobile_number": "+447700900123",
        "types": ["MARKETING", "TRANSACTIONAL"],
        "channels": ["EMAIL", "SMS"],
        "update_existing": True,
        "attributes": {
            "date_of_birth": "1815-12-10",
            "loyalty_tier": "gold",
            "name": "Ada Lovelace",
        },
    }
    assert natural_key(customer) == "ada@example.com"


def test_defaults_apply_and_a_contact_without_mobile_gets_no_sms() -> None:
    customer = build_customer({"email": "a@example.com"}, DEFAULTS)
    assert customer["types"] == ["MARKETING"]
    assert customer["channels"] == ["EMAIL"]


def test_types_and_channels_from_custom_fields_set_by_rules() -> None:
    customer = build_customer(
        {
            "mobile_number": "+447700900001",
            "custom.salesfire_types": "TRANSACTIONAL",
            "custom.salesfire_channels": ("SMS", "EMAIL"),
        },
        DEFAULTS,
    )
    assert customer["types"] == ["TRANSACTIONAL"]
    assert customer["channels"] == ["SMS"]  # no email, so no EMAIL channel
    assert natural_key(customer) == "+447700900001"


@pytest.mark.parametrize(
    "text",
    ["MARKETING,TRANSACTIONAL", "transactional; marketing", "['MARKETING', 'TRANSACTIONAL']"],
)
def test_types_written_in_any_reasonable_way(text: str) -> None:
    customer = build_customer({"email": "a@example.com", "types": text}, DEFAULTS)
    assert customer["types"] == ["MARKETING", "TRANSACTIONAL"]


def test_a_cleared_attribute_is_sent_as_null_and_tags_as_one_string() -> None:
    customer = build_customer(
        {"email": "a@example.com", "name": None, "custom.interests": ("tea", "cake")}, DEFAULTS
    )
    assert customer["attributes"] == {"interests": "cake, tea", "name": None}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"name": "Nobody"}, "an email or a mobile number is required"),
        ({"email": "not-an-email"}, "is not a valid email address"),
        ({"mobile_number": "call me"}, "E.164"),
        ({"email": "a@example.com", "types": "NEWSLETTER"}, "'NEWSLETTER' not one of"),
        ({"email": "a@example.com", "channels": "PIGEON"}, "'PIGEON' not one of"),
        ({"email": "a@example.com", "channels": "SMS"}, "no mobile number"),
        ({"email": "a@example.com", "custom.LoyaltyTier": "x"}, "snake_case"),
        ({"email": "a@example.com", "custom.2fa": "x"}, "starting with a letter"),
        ({"email": "a@example.com", "date_of_birth": "10 Dec 1815"}, "date_of_birth"),
        ({"email": "a@example.com", "date_of_birth": "31/02/1990"}, "date_of_birth"),
    ],
)
def test_rule_breaking_customers_are_refused_with_the_reason(
    data: dict[str, str], reason: str
) -> None:
    with pytest.raises(InvalidCustomer, match=reason):
        build_customer(data, DEFAULTS)


@pytest.mark.parametrize(
    "text",
    ["04-09-1994", "04/09/1994", "04091994", "4-9-94", "4/9/94", "1994-09-04", "1994/09/04"],
)
def test_every_documented_date_format_is_accepted(text: str) -> None:
    customer = build_customer({"email": "a@example.com", "date_of_birth": text}, DEFAULTS)
    assert customer["attributes"]["date_of_birth"] == text


def test_an_iso_timestamp_becomes_its_date() -> None:
    customer = build_customer(
        {"email": "a@example.com", "date_of_birth": "1994-09-04T00:00:00Z"}, DEFAULTS
    )
    assert customer["attributes"]["date_of_birth"] == "1994-09-04"
