"""The listing's fast contact mapping gives exactly what the plain one (kept here as the
reference: the mapping as it was before it was written for speed) gives, for any contact."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from syncd_xero import mapping
from syncd_xero.mapping import (
    ADDRESS_LINE_KEYS,
    ADDRESS_PARTS,
    ADDRESS_TYPES,
    ORGANISATION,
    PHONE_TYPES,
    READ_ONLY_SCALARS,
    WRITABLE_SCALARS,
    organisation,
)

from syncd.connector import RawValue


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value).lower()
    return text if text.strip() else None


def _phone_text(phone: Mapping[str, Any]) -> str | None:
    country = str(phone.get("PhoneCountryCode") or "").strip()
    if country and country[0].isdigit():
        country = "+" + country
    parts = [country, str(phone.get("PhoneAreaCode") or ""), str(phone.get("PhoneNumber") or "")]
    joined = " ".join(part.strip() for part in parts if part and part.strip())
    return joined or None


def _address_lines(address: Mapping[str, Any]) -> str | None:
    lines = [str(address.get(key) or "").strip() for key in ADDRESS_LINE_KEYS]
    joined = "\n".join(line for line in lines if line)
    return joined or None


def reference(contact: Mapping[str, Any]) -> dict[str, RawValue]:
    data: dict[str, RawValue] = {}
    for name in (*WRITABLE_SCALARS, *READ_ONLY_SCALARS):
        data[name] = _text(contact.get(name))
    for kind in PHONE_TYPES:
        data[f"Phones.{kind}"] = None
    for phone in contact.get("Phones") or ():
        kind = str(phone.get("PhoneType") or "")
        if kind in PHONE_TYPES:
            data[f"Phones.{kind}"] = _phone_text(phone)
    for kind in ADDRESS_TYPES:
        for part in ADDRESS_PARTS:
            data[f"Addresses.{kind}.{part}"] = None
    for address in contact.get("Addresses") or ():
        kind = str(address.get("AddressType") or "")
        if kind not in ADDRESS_TYPES:
            continue
        data[f"Addresses.{kind}.AddressLines"] = _address_lines(address)
        for part in ADDRESS_PARTS[1:]:
            data[f"Addresses.{kind}.{part}"] = _text(address.get(part))
    groups = [
        str(group.get("Name"))
        for group in contact.get("ContactGroups") or ()
        if group.get("Name") and group.get("Status", "ACTIVE") == "ACTIVE"
    ]
    data["ContactGroups"] = frozenset(groups) if groups else None
    data[ORGANISATION] = _organisation(data)
    return data


def _fold(value: RawValue) -> str:
    return " ".join(mapping._as_text(value).split()).casefold()


def _organisation(data: Mapping[str, RawValue]) -> str | None:
    name = mapping._as_text(data.get("Name")).strip()
    if not name:
        return None
    person = _fold(mapping.derive_name(data, ""))
    folded = _fold(name)
    if person and (folded == person or (folded.startswith(person + " (") and folded.endswith(")"))):
        return None
    return name


words = st.sampled_from(["", " ", "\t", "Jane", "jane", "Smith", " Smith ", "Zoë", "x@y.org"])
text = st.one_of(st.none(), words, st.text(max_size=6), st.booleans(), st.integers(-3, 99))
names = st.one_of(
    text, st.builds(lambda a, b: f"{a} {b}", words, words), st.just("Jane Smith (x@y.org)")
)
phone = st.fixed_dictionaries(
    {},
    optional={
        "PhoneType": st.sampled_from([*PHONE_TYPES, "PAGER", "", None]),
        "PhoneCountryCode": text,
        "PhoneAreaCode": text,
        "PhoneNumber": text,
    },
)
address = st.fixed_dictionaries(
    {},
    optional={
        "AddressType": st.sampled_from([*ADDRESS_TYPES, "DELIVERY", None]),
        **{key: text for key in ADDRESS_LINE_KEYS},
        **{part: text for part in ADDRESS_PARTS[1:]},
    },
)
group = st.fixed_dictionaries(
    {"Name": text}, optional={"Status": st.sampled_from(["ACTIVE", "DELETED"])}
)
contact = st.fixed_dictionaries(
    {},
    optional={
        **{key: text for key in (*WRITABLE_SCALARS, *READ_ONLY_SCALARS)},
        "Name": names,
        "FirstName": words,
        "LastName": words,
        "Phones": st.one_of(st.none(), st.lists(phone, max_size=6)),
        "Addresses": st.one_of(st.none(), st.lists(address, max_size=3)),
        "ContactGroups": st.one_of(st.none(), st.lists(group, max_size=3)),
    },
)


@settings(max_examples=400, deadline=None)
@given(contact)
def test_the_fast_mapping_equals_the_reference_field_for_field_and_in_order(
    contact: dict[str, Any],
) -> None:
    fast = mapping.contact_to_data(contact)
    expected = reference(contact)
    assert fast == expected
    assert list(fast) == list(expected)  # the same fields, in the same order
    assert organisation(fast) == _organisation(expected)


#: as the API answers: every slot listed, its parts strings and most of them empty
api_text = st.sampled_from(["", "", "", " ", "20", "430 7109", "44", "+1", "47 Queen St"])
api_phone = st.fixed_dictionaries(
    {
        "PhoneType": st.sampled_from(PHONE_TYPES),
        "PhoneCountryCode": api_text,
        "PhoneAreaCode": api_text,
        "PhoneNumber": api_text,
    }
)
api_address = st.fixed_dictionaries(
    {
        "AddressType": st.sampled_from(ADDRESS_TYPES),
        **{key: api_text for key in ADDRESS_LINE_KEYS[:3]},
        "AddressLine4": st.one_of(api_text, st.none()),
        **{part: api_text for part in ADDRESS_PARTS[1:]},
    },
)
api_contact = st.fixed_dictionaries(
    {
        "Name": names,
        "Phones": st.lists(api_phone, max_size=6),
        "Addresses": st.lists(api_address, max_size=3),
    },
    optional={"FirstName": words, "LastName": words, "EmailAddress": words},
)


@settings(max_examples=400, deadline=None)
@given(api_contact)
def test_the_fast_mapping_of_contacts_as_the_api_lists_them_equals_the_reference(
    contact: dict[str, Any],
) -> None:
    fast = mapping.contact_to_data(contact)
    expected = reference(contact)
    assert fast == expected
    assert list(fast) == list(expected)
