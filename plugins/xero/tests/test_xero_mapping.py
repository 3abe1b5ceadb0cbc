"""Pure pieces: dates, the field table, payloads, write outcomes, names, token files."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from syncd_xero import mapping, writes
from syncd_xero.connector import XeroConnector
from syncd_xero.tokens import TokenFile, TokenSet

from syncd.connector import ConnectorConfigError, ConnectorContext, HttpResponse


@pytest.mark.parametrize(
    "text",
    ["/Date(1503348544227+0000)/", "/Date(1503348544227)/", "2017-08-21T20:49:04.2270000"],
)
def test_dates_in_every_form_xero_uses(text: str) -> None:
    assert mapping.parse_msdate(text) == datetime(2017, 8, 21, 20, 49, 4, 227000, tzinfo=UTC)


def test_unreadable_dates_are_none() -> None:
    assert mapping.parse_msdate("/Date(abc)/") is None
    assert mapping.parse_msdate("") is None
    assert mapping.parse_msdate(None) is None


def test_the_default_mapping() -> None:
    canonical = {spec.name: spec.canonical for spec in XeroConnector.fields if spec.canonical}
    assert canonical == {
        "Name": "name",
        "FirstName": "first_name",
        "LastName": "last_name",
        "EmailAddress": "email",
        "Phones.DEFAULT": "phone",
        "Phones.MOBILE": "mobile",
        "Addresses.STREET.AddressLines": "street",
        "Addresses.STREET.City": "city",
        "Addresses.STREET.Region": "region",
        "Addresses.STREET.PostalCode": "postal_code",
        "Addresses.STREET.Country": "country",
        "Website": "website",
        "ContactNumber": "custom.xero_contact_number",
        "AccountNumber": "custom.xero_account_number",
        "CompanyNumber": "custom.xero_company_number",
    }
    read_only = {spec.name for spec in XeroConnector.fields if spec.read_only}
    assert {"Website", "IsCustomer", "IsSupplier", "ContactGroups", "ContactStatus"} <= read_only


def test_a_written_record_reads_back_the_same() -> None:
    data = {
        "Name": "Jane Smith",
        "EmailAddress": "jane@x.com",
        "Phones.DEFAULT": "+44 20 7946 0000",
        "Addresses.STREET.AddressLines": "1 A St\nFloor 2\nWing 3\nDesk 4\nChair 5",
        "Addresses.STREET.Country": "United Kingdom",
        "AccountNumber": None,
    }
    contact = mapping.data_to_contact(data)
    assert contact["AccountNumber"] == ""
    street = contact["Addresses"][0]
    assert street["AddressLine4"] == "Desk 4, Chair 5"
    back = mapping.contact_to_data(contact)
    assert back["Name"] == "Jane Smith" and back["Phones.DEFAULT"] == "+44 20 7946 0000"
    assert back["Addresses.STREET.AddressLines"] == "1 A St\nFloor 2\nWing 3\nDesk 4, Chair 5"


def test_updates_send_complete_slots_from_the_last_listing() -> None:
    listed = {
        "Phones": [
            {"PhoneType": "DEFAULT", "PhoneNumber": "1", "PhoneAreaCode": "2"},
            {"PhoneType": "MOBILE", "PhoneNumber": "3"},
        ],
        "Addresses": [{"AddressType": "STREET", "City": "Leeds", "PostalCode": "LS1"}],
    }
    contact = mapping.data_to_contact(
        {"Phones.MOBILE": "+447700900123", "Addresses.STREET.City": "York"}, listed
    )
    phones = {p["PhoneType"]: p for p in contact["Phones"]}
    assert phones["DEFAULT"]["PhoneAreaCode"] == "2"
    assert phones["MOBILE"] == {
        "PhoneType": "MOBILE",
        "PhoneNumber": "+447700900123",
        "PhoneAreaCode": "",
        "PhoneCountryCode": "",
    }
    assert contact["Addresses"] == [{"AddressType": "STREET", "City": "York", "PostalCode": "LS1"}]


def test_derived_names() -> None:
    assert mapping.derive_name({"FirstName": "Jane", "LastName": None}, "x") == "Jane"
    assert mapping.derive_name({"EmailAddress": "a@b.c"}, "x") == "a@b.c"
    assert mapping.derive_name({}, "fallback") == "fallback"
    assert writes.distinct_name("Jane Smith", "jane@x.com", "key", 0) == "Jane Smith (jane@x.com)"
    assert (
        writes.distinct_name("Jane Smith", None, "abcdef1234567", 0) == "Jane Smith (abcdef123456)"
    )
    long = writes.distinct_name("N" * 255, "jane@x.com", "key", 1)
    assert len(long) == 255 and long.endswith("(jane@x.com, key)")


def test_the_organisation_is_a_name_that_is_not_the_persons_own() -> None:
    def organisation(
        name: str, first: str = "Jane", last: str = "Smith", email: str = ""
    ) -> object:
        contact = {"Name": name, "FirstName": first, "LastName": last, "EmailAddress": email}
        return mapping.contact_to_data(contact)[mapping.ORGANISATION]

    assert organisation("Acme Ltd") == "Acme Ltd"
    assert organisation("Jane Smith") is None  # a person's contact is named after the person
    assert organisation("  jane   SMITH ") is None
    assert organisation("Jane Smith (jane@x.com)") is None  # made distinct by syncd
    assert organisation("jane@x.com", "", "", "jane@x.com") is None  # named after the email
    assert organisation("Jane Smith Consulting") == "Jane Smith Consulting"
    # written: the organisation becomes the Name; none leaves the Name for the caller to make
    assert mapping.data_to_contact({mapping.ORGANISATION: "Acme"}) == {"Name": "Acme"}
    assert mapping.data_to_contact({mapping.ORGANISATION: None}) == {"Name": ""}
    assert mapping.data_to_contact({"Name": "N", mapping.ORGANISATION: "Acme"}) == {"Name": "N"}


def test_idempotency_keys_are_stable_short_and_distinct() -> None:
    key = writes.idempotency_key("create", ["a", "b"])
    assert key == writes.idempotency_key("create", ["a", "b"])
    assert key != writes.idempotency_key("create", ["a", "c"])
    assert key != writes.idempotency_key("update", ["a", "b"])
    assert len(key) <= 128


def test_outcomes_are_read_per_element() -> None:
    body = {
        "Contacts": [
            {"ContactID": "1", "StatusAttributeString": "OK"},
            {"ValidationErrors": [{"Message": "Bad"}, {"Message": "Worse"}]},
            {"HasValidationErrors": True},
        ]
    }
    response = HttpResponse(200, {}, json.dumps(body).encode())
    result = writes.outcomes(response, [{}, {}, {}])
    assert not isinstance(result, str)
    assert [o.error if o else "?" for o in result] == [
        None,
        "Bad; Worse",
        "Xero refused the contact without saying why",
    ]
    refused = HttpResponse(400, {}, json.dumps({"Message": "Nope"}).encode())
    assert writes.outcomes(refused, [{}]) == "Xero refused the request (HTTP 400): Nope"


def test_token_files_are_private_and_atomic(tmp_path: Path) -> None:
    file = TokenFile(tmp_path / "oauth" / "t.json")
    tokens = TokenSet("access-secret", 123.0, "refresh-secret", 100.0)
    file.save(tokens)
    assert stat.S_IMODE(file.path.stat().st_mode) == 0o600
    assert file.load() == tokens
    assert "secret" not in repr(tokens)
    assert [p.name for p in file.path.parent.iterdir()] == ["t.json"]  # no temp files left
    with file.locked():
        assert file.lock_path.exists()
    file.path.write_text("{not json")
    assert file.load() is None
    os.chmod(file.path, 0o644)


def test_settings_are_checked(tmp_path: Path) -> None:
    context = ConnectorContext("s", "a", tmp_path)
    with pytest.raises(ConnectorConfigError) as missing:
        XeroConnector({}, context)
    assert missing.value.key == "client_id"
    with pytest.raises(ConnectorConfigError) as bad:
        XeroConnector({"client_id": "x", "page_size": 5000}, context)
    assert bad.value.key == "page_size"
    with pytest.raises(ConnectorConfigError):
        XeroConnector({"client_id": "x", "grant": "password"}, context)
    connector = XeroConnector({"client_id": "x", "client_secret": "hush"}, context)
    assert "hush" not in repr(connector) and "hush" not in repr(connector._oauth)
    assert XeroConnector.secret_settings() == {"client_secret", "webhook_key"}
