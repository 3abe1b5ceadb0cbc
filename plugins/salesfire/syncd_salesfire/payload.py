"""From the fields the engine hands over to one Salesfire customer, checked before it is sent.

Salesfire documents one customer per request (vendors.md §4)::

    {"email": ..., "mobile_number": ..., "types": ["MARKETING", "TRANSACTIONAL"],
     "channels": ["EMAIL", "SMS"], "update_existing": true,
     "attributes": {"name": ..., "date_of_birth": ...}}

and these rules, which :func:`build_customer` applies so that a customer Salesfire would refuse is
reported as that record's failure and never sent:

* an email or a mobile number is required;
* ``types`` and ``channels`` are upper-case values from ``MARKETING, TRANSACTIONAL`` and
  ``EMAIL, SMS``;
* attribute keys are lower-case snake_case starting with a letter; values are strings or null;
* ``date_of_birth`` is in one of the formats the help page lists.

Where the fields come from (see the README's mapping table): ``email``, ``mobile_number`` and
``types``/``channels`` are top-level; every other field becomes an attribute under its own name
(``custom.<key>`` under ``<key>``). Types and channels are comma-separated text (``"MARKETING,
TRANSACTIONAL"``) so that a sync rule can ``set`` them; letter case is forgiven here, since the
payload is what Salesfire checks. A contact without a mobile number gets no SMS channel and one
without an email no EMAIL channel.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from syncd.connector import RawValue
from syncd.contact import CUSTOM_PREFIX, is_valid_email, normalise_phone

TYPES: tuple[str, ...] = ("MARKETING", "TRANSACTIONAL")
CHANNELS: tuple[str, ...] = ("EMAIL", "SMS")

#: the connector's field names for the top-level customer keys
EMAIL = "email"
MOBILE = "mobile_number"
TYPES_FIELD = "types"
CHANNELS_FIELD = "channels"
#: the same, as they arrive when the engine passes custom fields through under their own name
TYPES_ALIASES = (TYPES_FIELD, CUSTOM_PREFIX + "salesfire_types")
CHANNELS_ALIASES = (CHANNELS_FIELD, CUSTOM_PREFIX + "salesfire_channels")

ATTRIBUTE_KEY = re.compile(r"^[a-z][a-z0-9_]*$")
E164 = re.compile(r"^\+[1-9]\d{6,14}$")

# The formats the help page lists for date_of_birth: 04-09-1994, 04/09/1994, 04091994, 4-9-94,
# 4/9/94, 1994-09-04, 1994/09/04. Day first, as 1994-09-04 shows (a UK vendor).
_DAY_FIRST = re.compile(r"^(\d{1,2})([-/])(\d{1,2})\2(\d{4}|\d{2})$")
_COMPACT = re.compile(r"^(\d{2})(\d{2})(\d{4})$")
_YEAR_FIRST = re.compile(r"^(\d{4})([-/])(\d{2})\2(\d{2})$")
# An ISO timestamp (what a date field exported by another app often looks like): its date part.
_ISO_TIMESTAMP = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ]\S+$")


class InvalidCustomer(ValueError):
    """The customer breaks one of Salesfire's rules; ``str(exc)`` says which, for the user."""


@dataclass(frozen=True)
class Defaults:
    """What a customer gets when its fields do not say (from the connector's settings)."""

    types: tuple[str, ...] = TYPES
    channels: tuple[str, ...] = CHANNELS
    update_existing: bool = True


def parse_choices(value: RawValue, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    """``"marketing, TRANSACTIONAL"`` (or a tuple) as allowed values in their canonical order."""
    if value is None:
        return ()
    # words only: "MARKETING, SMS", "MARKETING;SMS" and a list written out as text all work
    items: Iterable[str] = [value] if isinstance(value, str) else value
    chosen = {word.upper() for item in items for word in re.findall(r"[A-Za-z_]+", item)}
    unknown = sorted(chosen - set(allowed))
    if unknown:
        raise InvalidCustomer(
            f"{what}: {', '.join(repr(u) for u in unknown)} not one of {', '.join(allowed)}"
        )
    return tuple(item for item in allowed if item in chosen)


def natural_key(customer: Mapping[str, Any]) -> str:
    """How Salesfire tells customers apart: the email (lower-cased), else the mobile number."""
    email = customer.get(EMAIL)
    if isinstance(email, str) and email:
        return email.lower()
    return str(customer[MOBILE])


def fields_from_key(key: str) -> dict[str, RawValue]:
    """The identifying field behind a :func:`natural_key` (for an update without a cache)."""
    return {EMAIL: key} if "@" in key else {MOBILE: key}


def build_customer(
    data: Mapping[str, RawValue], defaults: Defaults, phone_region: str = "GB"
) -> dict[str, Any]:
    """The JSON payload for one customer; raises :class:`InvalidCustomer` with every problem."""
    problems: list[str] = []
    customer: dict[str, Any] = {}

    email = _text(data.get(EMAIL))
    if email is not None:
        if is_valid_email(email):
            customer[EMAIL] = email
        else:
            problems.append(f"email: {email!r} is not a valid email address")
    mobile = _text(data.get(MOBILE))
    if mobile is not None:
        formatted = normalise_phone(mobile, phone_region)
        if E164.match(formatted):
            customer[MOBILE] = formatted
        else:
            problems.append(f"mobile_number: {mobile!r} is not a phone number in E.164 form")
    if email is None and mobile is None:
        problems.append("an email or a mobile number is required")

    try:
        types = parse_choices(_first(data, TYPES_ALIASES), TYPES, "types") or defaults.types
    except InvalidCustomer as exc:
        problems.append(str(exc))
        types = ()
    channels: tuple[str, ...] = ()
    try:
        asked = parse_choices(_first(data, CHANNELS_ALIASES), CHANNELS, "channels")
    except InvalidCustomer as exc:
        problems.append(str(exc))
    else:
        asked = asked or defaults.channels
        # Salesfire cannot text a customer without a mobile number, nor mail one without email.
        channels = tuple(
            c
            for c in asked
            if (c != "SMS" or MOBILE in customer) and (c != "EMAIL" or EMAIL in customer)
        )
        if not channels and (EMAIL in customer or MOBILE in customer):
            missing = "no mobile number" if "SMS" in asked else "no email"
            problems.append(f"channels: {', '.join(asked)} cannot reach this customer ({missing})")
    if types:
        customer["types"] = list(types)
    if channels:
        customer["channels"] = list(channels)
    customer["update_existing"] = defaults.update_existing

    attributes: dict[str, str | None] = {}
    for name, value in data.items():
        if name in (EMAIL, MOBILE, *TYPES_ALIASES, *CHANNELS_ALIASES):
            continue
        key = name.removeprefix(CUSTOM_PREFIX)
        if not ATTRIBUTE_KEY.match(key):
            problems.append(
                f"attribute {key!r}: keys must be lower-case snake_case starting with a letter"
            )
            continue
        text = _attribute_text(value)
        if key == "date_of_birth" and text is not None:
            try:
                text = check_date_of_birth(text)
            except InvalidCustomer as exc:
                problems.append(str(exc))
                continue
        attributes[key] = text
    if attributes:
        customer["attributes"] = dict(sorted(attributes.items()))

    if problems:
        raise InvalidCustomer("; ".join(problems))
    return customer


def check_date_of_birth(text: str) -> str:
    """``text`` if it is in a format Salesfire accepts, an ISO timestamp's date, or a failure."""
    stamp = _ISO_TIMESTAMP.match(text)
    if stamp:
        text = stamp.group(1)
    if _real_date(text):
        return text
    raise InvalidCustomer(
        f"date_of_birth: {text!r} is not a date Salesfire accepts "
        "(use 1994-09-04, 04/09/1994, 04-09-1994, 04091994 or 4/9/94)"
    )


def _real_date(text: str) -> bool:
    if match := _YEAR_FIRST.match(text):
        year, month, day = int(match.group(1)), int(match.group(3)), int(match.group(4))
    elif match := _DAY_FIRST.match(text):
        day, month, year = int(match.group(1)), int(match.group(3)), int(match.group(4))
        if len(match.group(4)) == 2:
            year += 2000  # only used to check the day exists; 29/2/00 is a real date
        elif len(match.group(1)) != 2 or len(match.group(3)) != 2:
            return False  # 4-9-1994 is not among the listed formats
    elif match := _COMPACT.match(text):
        day, month, year = int(match.group(1)), int(match.group(2)), int(match.group(3))
    else:
        return False
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True


def _first(data: Mapping[str, RawValue], names: Iterable[str]) -> RawValue:
    for name in names:
        if name in data:
            return data[name]
    return None


def _text(value: RawValue) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else ",".join(value)
    text = text.strip()
    return text or None


def _attribute_text(value: RawValue) -> str | None:
    """Attribute values are strings or null; a set of values (tags) becomes one sorted string."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    return ", ".join(sorted(v for v in value if v)) or None
