"""Xero's contact JSON ↔ the flat records syncd passes around.

A Xero contact nests phones and addresses in typed slots (``Phones[PhoneType=MOBILE]``,
``Addresses[AddressType=STREET]``). The connector exposes them as flat, dotted field names
(``Phones.MOBILE``, ``Addresses.STREET.City``) so that the engine and custom mappings can address
each slot. :data:`FIELDS` is the table of those names with their default canonical fields; the
plugin README shows the same table.

Dates: Xero writes ``UpdatedDateUTC`` in Microsoft's JSON form. Both ``/Date(1573755038314)/``
(the schema's example) and ``/Date(1503348544227+0000)/`` (the response examples) occur; the
milliseconds are UTC in both and the offset is informational, so both parse the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from syncd.connector import FieldSpec, RawValue

# --- Microsoft JSON dates -------------------------------------------------------------------

_MSDATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")


def parse_msdate(value: object) -> datetime | None:
    """``/Date(ms)/`` or ``/Date(ms+0000)/`` (or, defensively, ISO 8601) as an aware UTC time."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    match = _MSDATE.match(text)
    if match:
        return datetime.fromtimestamp(int(match.group(1)) / 1000, tz=UTC)
    # Identity responses (createdDateUtc) and some older payloads use ISO 8601, often with more
    # than six fractional digits and no offset, which means UTC.
    iso = re.sub(r"(\.\d{6})\d+", r"\1", text.replace("Z", "+00:00"))
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_msdate(moment: datetime, with_offset: bool = True) -> str:
    ms = int(moment.timestamp() * 1000)
    return f"/Date({ms}+0000)/" if with_offset else f"/Date({ms})/"


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


# --- the field table ------------------------------------------------------------------------

PHONE_TYPES = ("DEFAULT", "DDI", "MOBILE", "FAX", "OFFICE")
ADDRESS_TYPES = ("STREET", "POBOX")
#: the parts of an address exposed as fields; ``AddressLines`` joins AddressLine1-4 with newlines
ADDRESS_PARTS = ("AddressLines", "City", "Region", "PostalCode", "Country", "AttentionTo")
ADDRESS_LINE_KEYS = ("AddressLine1", "AddressLine2", "AddressLine3", "AddressLine4")

#: plain string fields of the Contact object that can be written
WRITABLE_SCALARS = (
    "Name",
    "FirstName",
    "LastName",
    "EmailAddress",
    "ContactNumber",
    "AccountNumber",
    "CompanyNumber",
    "TaxNumber",
    "BankAccountDetails",
)
#: fields Xero sets itself (the spec marks Website and UpdatedDateUTC ``readOnly``; IsSupplier
#: and IsCustomer "cannot be set via PUT or POST")
READ_ONLY_SCALARS = ("Website", "MergedToContactID", "ContactStatus", "IsSupplier", "IsCustomer")

_CANONICAL: dict[str, str] = {
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
    # Xero-only identifiers travel as custom fields, named so that the design's example mapping
    # (AccountNumber → custom.xero_account_number) is simply the default.
    "ContactNumber": "custom.xero_contact_number",
    "AccountNumber": "custom.xero_account_number",
    "CompanyNumber": "custom.xero_company_number",
}


#: a field of the connector's own, not of Xero's Contact: the organisation the contact's Name
#: holds, or nothing when the Name is only the person's own name (Xero requires a Name, so a
#: person's contact is named after the person, by whoever made it, syncd included). Map it to an
#: app's company (``a = "Organisation"``, ``b = "account.name"``) so that a person never becomes a
#: company there; writing it sets the Name, and clearing it names the contact after its person.
ORGANISATION = "Organisation"


def _field_names() -> list[tuple[str, bool]]:
    names: list[tuple[str, bool]] = [(name, False) for name in WRITABLE_SCALARS]
    names.append((ORGANISATION, False))
    names += [(f"Phones.{kind}", False) for kind in PHONE_TYPES]
    names += [
        (f"Addresses.{kind}.{part}", False) for kind in ADDRESS_TYPES for part in ADDRESS_PARTS
    ]
    names += [(name, True) for name in READ_ONLY_SCALARS]
    names.append(("ContactGroups", True))
    return names


FIELDS: tuple[FieldSpec, ...] = tuple(
    FieldSpec(name, _CANONICAL.get(name), read_only) for name, read_only in _field_names()
)
READ_ONLY_FIELDS = frozenset(spec.name for spec in FIELDS if spec.read_only)
KNOWN_FIELDS = frozenset(spec.name for spec in FIELDS)


# --- reading --------------------------------------------------------------------------------


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value).lower()
    return text if text.strip() else None


def phone_text(phone: Mapping[str, Any]) -> str | None:
    """One phone slot as a single string: ``+44 20 7946 0000`` or ``(626) 847-1294``.

    Xero splits numbers into country code, area code and number; the engine normalises the joined
    text with phonenumbers, so how the parts were split does not matter.
    """
    country_code = phone.get("PhoneCountryCode")
    area = phone.get("PhoneAreaCode")
    number = phone.get("PhoneNumber")
    if not (country_code or area or number):
        return None  # an empty slot (Xero always lists DEFAULT, DDI, FAX and MOBILE)
    country = str(country_code or "").strip()
    if country and country[0].isdigit():
        country = "+" + country
    parts = [country, str(area or ""), str(number or "")]
    joined = " ".join(part.strip() for part in parts if part and part.strip())
    return joined or None


def address_lines(address: Mapping[str, Any]) -> str | None:
    get = address.get
    first = get("AddressLine1")
    if first.__class__ is str and get("AddressLine2") == get("AddressLine3") == "":
        # the usual address: one line at most (AddressLine4 is checked as it is)
        fourth = get("AddressLine4")
        if fourth == "" or fourth is None:
            return first.strip() or None
    lines = [str(get(key) or "").strip() for key in ADDRESS_LINE_KEYS]
    joined = "\n".join([line for line in lines if line])
    return joined or None


_SCALARS = (*WRITABLE_SCALARS, *READ_ONLY_SCALARS)
_PHONE_KEYS = {kind: f"Phones.{kind}" for kind in PHONE_TYPES}
#: per address type: the AddressLines field, then (field, part) for the other parts
_ADDRESS_KEYS = {
    kind: (
        f"Addresses.{kind}.{ADDRESS_PARTS[0]}",
        tuple((f"Addresses.{kind}.{part}", part) for part in ADDRESS_PARTS[1:]),
    )
    for kind in ADDRESS_TYPES
}
#: every field empty, in the record's field order (a copy is filled in per contact)
_EMPTY: dict[str, RawValue] = dict.fromkeys(
    [
        *_SCALARS,
        *_PHONE_KEYS.values(),
        *(f"Addresses.{kind}.{part}" for kind in ADDRESS_TYPES for part in ADDRESS_PARTS),
        "ContactGroups",
        ORGANISATION,
    ]
)


def contact_to_data(contact: Mapping[str, Any]) -> dict[str, RawValue]:
    """A Xero contact as a flat record keyed by the names in :data:`FIELDS`.

    Called once per listed contact, so it is written for speed (a listing of 10,000 contacts
    spends more time here than anywhere but JSON decoding): empty slots and absent keys cost a
    lookup each, and every field starts empty from one prepared dict.
    """
    data = _EMPTY.copy()
    get = contact.get
    for name in _SCALARS:
        value = get(name)
        if value is None:
            continue
        if value.__class__ is str:
            data[name] = value if value and not value.isspace() else None
        else:
            data[name] = _text(value)
    phones = get("Phones")
    if phones:
        for phone in phones:
            kind = phone.get("PhoneType")
            key = _PHONE_KEYS.get(kind if kind.__class__ is str else str(kind or ""))
            if key is None:
                continue
            number = phone.get("PhoneNumber")
            if number == "" and phone.get("PhoneAreaCode") == "":
                code = phone.get("PhoneCountryCode")
                if code == "" or code is None:
                    data[key] = None  # an empty slot, the usual one
                    continue
            data[key] = phone_text(phone)
    addresses = get("Addresses")
    if addresses:
        for address in addresses:
            kind = address.get("AddressType")
            keys = _ADDRESS_KEYS.get(kind if kind.__class__ is str else str(kind or ""))
            if keys is None:
                continue
            lines, parts = keys
            data[lines] = address_lines(address)
            for key, part in parts:
                value = address.get(part)
                if value.__class__ is str:
                    data[key] = value if value and not value.isspace() else None
                else:
                    data[key] = _text(value)
    groups = get("ContactGroups")
    if groups:
        names = [
            str(group.get("Name"))
            for group in groups
            if group.get("Name") and group.get("Status", "ACTIVE") == "ACTIVE"
        ]
        data["ContactGroups"] = frozenset(names) if names else None
    data[ORGANISATION] = organisation(data)
    return data


def fold(value: RawValue) -> str:
    """A value compared as people read it: white space folded, letter case ignored."""
    return " ".join(_as_text(value).split()).casefold()


def organisation(data: Mapping[str, RawValue]) -> str | None:
    """The organisation a contact's Name holds: None when the Name is the person's own name,
    as :func:`derive_name` makes it ("Jane Smith", else the email), or made distinct from a
    taken one ("Jane Smith (jane@x.com)", :func:`syncd_xero.writes.distinct_name`)."""
    name = _as_text(data.get("Name")).strip()
    if not name:
        return None
    named = derive_name(data, "")
    if name == named:
        return None  # the person's own name, as is (the common case: no folding needed)
    person = fold(named)
    folded = fold(name)
    if person and (folded == person or (folded.startswith(person + " (") and folded.endswith(")"))):
        return None
    return name


def is_archived(contact: Mapping[str, Any]) -> bool:
    """ARCHIVED contacts (and merged ones, which Xero archives) and GDPR-erased ones."""
    return str(contact.get("ContactStatus") or "ACTIVE").upper() in ("ARCHIVED", "GDPRREQUEST")


# --- writing --------------------------------------------------------------------------------


def _split_lines(value: str | None) -> dict[str, str]:
    """Street text back into AddressLine1-4; lines past the fourth are kept in the fourth."""
    lines = [line.strip() for line in (value or "").splitlines() if line.strip()]
    if len(lines) > 4:
        lines = [*lines[:3], ", ".join(lines[3:])]
    lines += [""] * (4 - len(lines))
    return dict(zip(ADDRESS_LINE_KEYS, lines, strict=True))


def _as_text(value: RawValue) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return ", ".join(sorted(value))


def data_to_contact(
    data: Mapping[str, RawValue], listed: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The Contact object to send for ``data`` (fields to set; ``None`` clears).

    Read-only and unknown fields are left out. When an update touches a phone or an address
    slot, ``listed`` (the contact as last listed, when known) fills in the slot's other parts and
    the other slots, so the request holds complete ``Phones``/``Addresses`` arrays: that keeps the
    contact intact whether Xero merges those arrays by type (what the sandbox does, and what Xero
    appears to do) or replaces them wholesale.
    """
    contact: dict[str, Any] = {}
    phones: dict[str, str | None] = {}
    addresses: dict[str, dict[str, RawValue]] = {}
    for name, value in data.items():
        if name in READ_ONLY_FIELDS or name not in KNOWN_FIELDS:
            continue
        if name == ORGANISATION:
            if "Name" not in data:
                # the organisation is the Name; none: the caller names it after the person
                contact["Name"] = _as_text(value)
            continue
        if name.startswith("Phones."):
            phones[name.split(".", 1)[1]] = _as_text(value) or None
        elif name.startswith("Addresses."):
            _, kind, part = name.split(".", 2)
            addresses.setdefault(kind, {})[part] = value
        else:
            contact[name] = _as_text(value)
    if phones:
        contact["Phones"] = _phones_payload(phones, listed)
    if addresses:
        contact["Addresses"] = _addresses_payload(addresses, listed)
    return contact


def _phones_payload(
    changes: Mapping[str, str | None], listed: Mapping[str, Any] | None
) -> list[dict[str, str]]:
    slots: dict[str, dict[str, str]] = {}
    for phone in (listed or {}).get("Phones") or ():
        kind = str(phone.get("PhoneType") or "")
        if kind in PHONE_TYPES and kind not in changes:
            slots[kind] = {
                "PhoneType": kind,
                "PhoneNumber": str(phone.get("PhoneNumber") or ""),
                "PhoneAreaCode": str(phone.get("PhoneAreaCode") or ""),
                "PhoneCountryCode": str(phone.get("PhoneCountryCode") or ""),
            }
    for kind, number in changes.items():
        # the whole number goes in PhoneNumber; area and country codes are cleared so that a
        # number written by syncd reads back exactly as it was written
        slots[kind] = {
            "PhoneType": kind,
            "PhoneNumber": number or "",
            "PhoneAreaCode": "",
            "PhoneCountryCode": "",
        }
    return [slots[kind] for kind in PHONE_TYPES if kind in slots]


def _addresses_payload(
    changes: Mapping[str, Mapping[str, RawValue]], listed: Mapping[str, Any] | None
) -> list[dict[str, str]]:
    slots: dict[str, dict[str, str]] = {}
    for address in (listed or {}).get("Addresses") or ():
        kind = str(address.get("AddressType") or "")
        if kind in ADDRESS_TYPES:
            slot = {"AddressType": kind}
            for key in (*ADDRESS_LINE_KEYS, *ADDRESS_PARTS[1:]):
                if address.get(key) is not None:
                    slot[key] = str(address[key])
            slots[kind] = slot
    for kind, parts in changes.items():
        slot = slots.setdefault(kind, {"AddressType": kind})
        for part, value in parts.items():
            if part == "AddressLines":
                slot.update(_split_lines(_as_text(value)))
            else:
                slot[part] = _as_text(value)
    return [slots[kind] for kind in ADDRESS_TYPES if kind in slots]


#: the spec's ``maxLength`` of the writable fields
MAX_LENGTHS = {
    "Name": 255,
    "FirstName": 255,
    "LastName": 255,
    "EmailAddress": 255,
    "ContactNumber": 50,
    "AccountNumber": 50,
    "CompanyNumber": 50,
    "TaxNumber": 50,
}
PHONE_MAX = {"PhoneNumber": 50, "PhoneAreaCode": 10, "PhoneCountryCode": 20}
ADDRESS_MAX = {
    **dict.fromkeys(ADDRESS_LINE_KEYS, 500),
    "City": 255,
    "Region": 255,
    "PostalCode": 50,
    "Country": 50,
    "AttentionTo": 255,
}


def too_long(contact: Mapping[str, Any]) -> str | None:
    """Why Xero would refuse ``contact`` for its length, checked before sending: a request the
    spec forbids is never sent, and the record is refused on its own with a clear reason."""
    problems = [
        f"{key} is longer than Xero's {limit} characters"
        for key, limit in MAX_LENGTHS.items()
        if len(str(contact.get(key) or "")) > limit
    ]
    for phone in contact.get("Phones") or ():
        problems += [
            f"Phones.{phone.get('PhoneType')} is longer than Xero's {limit} characters"
            for part, limit in PHONE_MAX.items()
            if len(str(phone.get(part) or "")) > limit
        ]
    for address in contact.get("Addresses") or ():
        problems += [
            f"Addresses.{address.get('AddressType')}.{part} is longer than Xero's {limit} "
            "characters"
            for part, limit in ADDRESS_MAX.items()
            if len(str(address.get(part) or "")) > limit
        ]
    return "; ".join(problems) or None


def derive_name(data: Mapping[str, RawValue], fallback: str) -> str:
    """A Name for a create that has none (Xero requires one): first + last, else the email."""
    first = _as_text(data.get("FirstName")).strip()
    last = _as_text(data.get("LastName")).strip()
    full = " ".join(part for part in (first, last) if part)
    if full:
        return full
    email = _as_text(data.get("EmailAddress")).strip()
    return email or fallback
