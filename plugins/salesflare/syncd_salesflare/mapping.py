"""Salesflare's contact JSON ↔ the flat records syncd works with.

Salesflare reads and writes contacts in different shapes (vendors.md §2.4): a read carries
``addresses[]``, ``positions[]`` plus the current ``role``, ``account {id, name}`` and tag
objects, while a write takes ``address {…}``, ``position {…}`` (``role`` on PUT), an account *id*
and tag names. This module flattens a read into dotted field names (``address.city``,
``account.name``) and turns changed fields back into a write body. The account id for
``account.name`` is resolved by :mod:`syncd_salesflare.accounts`, not here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from syncd.connector import FieldSpec, RawValue, RemoteRecord

CUSTOM_PREFIX = "custom."
COMPANY_FIELD = "account.name"
ROLE_FIELD = "position.role"

#: flat text fields, named as Salesflare names them in both reads and writes
FLAT_FIELDS = (
    "email",
    "firstname",
    "lastname",
    "prefix",
    "middle",
    "suffix",
    "phone_number",
    "mobile_phone_number",
    "home_phone_number",
    "fax_number",
    "domain",
)
#: ``address.<ours>`` → the key inside a Salesflare address object
ADDRESS_KEYS = {
    "street": "street",
    "city": "city",
    "state_region": "state_region",
    "zip": "zip",
    "country": "country",
}

FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("email", "email"),
    FieldSpec("firstname", "first_name"),
    FieldSpec("lastname", "last_name"),
    # Salesflare derives ``name`` from the name parts, so it is read-only; and it is not mapped
    # to the canonical ``name`` by default: that would echo the derived value back to the other
    # side after every create, and overwrite what other apps keep there (Xero's Name is the
    # organisation).
    FieldSpec("name", None, read_only=True),
    FieldSpec(COMPANY_FIELD, "company"),
    FieldSpec(ROLE_FIELD, "title"),
    FieldSpec("phone_number", "phone"),
    FieldSpec("mobile_phone_number", "mobile"),
    FieldSpec("address.street", "street"),
    FieldSpec("address.city", "city"),
    FieldSpec("address.state_region", "region"),
    FieldSpec("address.zip", "postal_code"),
    FieldSpec("address.country", "country"),
    FieldSpec("tags", "tags"),
    # available to custom [[fields]] mappings only
    FieldSpec("prefix"),
    FieldSpec("middle"),
    FieldSpec("suffix"),
    FieldSpec("home_phone_number"),
    FieldSpec("fax_number"),
    FieldSpec("domain"),
    FieldSpec("opt-out"),
    FieldSpec("owner.email", read_only=True),
)
READ_ONLY = frozenset(spec.name for spec in FIELDS if spec.read_only)


# --- reading ------------------------------------------------------------------------------


def text(value: Any) -> str | None:
    """A value as the app holds it, as text; empty is ``None``."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict):
        # a select option comes back as an object; its name is what people see
        return text(value.get("name") if "name" in value else value.get("value"))
    result = str(value)
    return result if result != "" else None


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_time(moment: datetime) -> str:
    """Salesflare's own format: ISO 8601 in UTC with milliseconds and a ``Z``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def primary_address(contact: Mapping[str, Any]) -> dict[str, Any] | None:
    """The first address that is not archived (the one syncd reads and writes)."""
    for address in contact.get("addresses") or ():
        if isinstance(address, dict) and not address.get("archived"):
            return address
    address = contact.get("address")  # tolerate a single object, as writes use
    return address if isinstance(address, dict) else None


def current_role(contact: Mapping[str, Any]) -> str | None:
    if "role" in contact:
        return text(contact.get("role"))
    for position in contact.get("positions") or ():
        if isinstance(position, dict):
            return text(position.get("role"))
    position = contact.get("position")
    return text(position.get("role")) if isinstance(position, dict) else None


def tag_names(tags: Any) -> tuple[str, ...]:
    names = set()
    for tag in tags or ():
        name = text(tag.get("name")) if isinstance(tag, dict) else text(tag)
        if name:
            names.add(name)
    return tuple(sorted(names))


def custom_values(custom: Any) -> dict[str, RawValue]:
    values: dict[str, RawValue] = {}
    if not isinstance(custom, dict):
        return values
    for key, value in custom.items():
        if isinstance(value, list):
            values[CUSTOM_PREFIX + key] = tuple(t for t in (text(v) for v in value) if t)
        else:
            values[CUSTOM_PREFIX + key] = text(value)
    return values


_ADDRESS_FIELDS = tuple((f"address.{ours}", theirs) for ours, theirs in ADDRESS_KEYS.items())


def record_from_contact(contact: Mapping[str, Any]) -> RemoteRecord:
    """A listed contact as a record."""
    return _record(contact, primary_address(contact))


def listed_contact(contact: Mapping[str, Any]) -> tuple[RemoteRecord, CurrentState]:
    """A listed contact as a record, and what an update of it must know: the listing's way,
    finding the primary address once for both."""
    address = primary_address(contact)
    custom = contact.get("custom")
    # most contacts have nothing nested to keep: they share one state
    nothing = address is None and custom is None
    state = NO_STATE if nothing else CurrentState.parts(address, custom)
    return _record(contact, address), state


def _record(contact: Mapping[str, Any], address: Mapping[str, Any] | None) -> RemoteRecord:
    """Called once per contact in a listing, so text (the usual value) takes a fast path:
    :func:`text` of a string is the string, or None when empty; and the usual shapes of the
    nested values (a role string, tag objects with a name, an owner's email) are read inline."""
    get = contact.get
    data: dict[str, RawValue] = {}
    for name in FLAT_FIELDS:
        value = get(name)
        data[name] = (value or None) if value.__class__ is str or value is None else text(value)
    value = get("name")
    data["name"] = (value or None) if value.__class__ is str or value is None else text(value)
    account = get("account")
    if account.__class__ is dict:
        value = account.get("name")
        data[COMPANY_FIELD] = (value or None) if value.__class__ is str else text(value)
    else:
        data[COMPANY_FIELD] = text(account.get("name")) if isinstance(account, dict) else None
    if "role" in contact:
        value = get("role")
        data[ROLE_FIELD] = (value or None) if value.__class__ is str else text(value)
    else:
        data[ROLE_FIELD] = current_role(contact)
    if address is None:
        data.update(_NO_ADDRESS)
    else:
        for key, theirs in _ADDRESS_FIELDS:
            value = address.get(theirs)
            if theirs == "state_region" and value is None:
                value = address.get("region")  # the deprecated spelling
            data[key] = (value or None) if value.__class__ is str or value is None else text(value)
    tags = get("tags")
    data["tags"] = tag_names(tags) if tags else ()
    opt_out = get("opt-out")
    data["opt-out"] = None if opt_out is None else ("true" if opt_out else "false")
    owner = get("owner")
    if owner.__class__ is dict and (value := owner.get("email")).__class__ is str:
        data["owner.email"] = value or None
    else:
        data["owner.email"] = text(owner.get("email")) if isinstance(owner, dict) else None
    custom = get("custom")
    if custom:
        data.update(custom_values(custom))
    return RemoteRecord(
        id=str(contact["id"]),
        data=data,
        updated_at=parse_time(get("modification_date")),
        archived=bool(get("archived")),
    )


_NO_ADDRESS: dict[str, RawValue] = dict.fromkeys(key for key, _ in _ADDRESS_FIELDS)


@dataclass(frozen=True, slots=True)
class CurrentState:
    """What an update must know of a contact to change part of a nested value. Never changed
    once made (contacts without an address or custom fields share :data:`NO_STATE`)."""

    address_id: Any = None
    address: dict[str, Any] = field(default_factory=dict)
    custom: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, contact: Mapping[str, Any]) -> CurrentState:
        return cls.parts(primary_address(contact), contact.get("custom"))

    @classmethod
    def parts(cls, address: Mapping[str, Any] | None, custom: Any) -> CurrentState:
        """From a contact's primary address and its ``custom`` object (a decoded answer's,
        which nothing changes afterwards: kept, not copied)."""
        address = address or {}
        return cls(
            address_id=address.get("id"),
            address={k: address.get(k) for k in ADDRESS_KEYS.values()},
            custom=custom if isinstance(custom, dict) else {},
        )


NO_STATE = CurrentState.parts(None, None)


# --- writing ------------------------------------------------------------------------------


def _tags_out(value: RawValue) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [t.strip() for t in value.split(";") if t.strip()]
    return sorted(value)


def _scalar_out(value: RawValue) -> Any:
    if value is None or isinstance(value, str):
        return value
    return sorted(value)


@dataclass
class WriteParts:
    """The fields of one write, grouped by how Salesflare takes them."""

    flat: dict[str, Any] = field(default_factory=dict)
    address: dict[str, Any] = field(default_factory=dict)
    custom: dict[str, Any] = field(default_factory=dict)
    role: RawValue = None
    has_role: bool = False
    company: str | None = None
    has_company: bool = False

    @property
    def needs_current(self) -> bool:
        """Whether building an update needs the contact's current address or custom values."""
        return bool(self.address or self.custom)


def split_write(data: Mapping[str, RawValue]) -> WriteParts:
    parts = WriteParts()
    for name, value in data.items():
        if name in READ_ONLY:
            continue  # never sent, whatever the mapping says
        if name in FLAT_FIELDS:
            parts.flat[name] = _scalar_out(value)
        elif name == "tags":
            parts.flat["tags"] = _tags_out(value)
        elif name == "opt-out":
            parts.flat["opt-out"] = str(value).strip().lower() in ("true", "1", "yes")
        elif name == ROLE_FIELD:
            parts.role, parts.has_role = value, True
        elif name == COMPANY_FIELD:
            parts.company = value if isinstance(value, str) and value.strip() else None
            parts.has_company = True
        elif name.startswith("address."):
            key = name.removeprefix("address.")
            if key in ADDRESS_KEYS:
                parts.address[ADDRESS_KEYS[key]] = _scalar_out(value)
        elif name.startswith(CUSTOM_PREFIX):
            parts.custom[name.removeprefix(CUSTOM_PREFIX)] = _scalar_out(value)
    return parts


def create_body(parts: WriteParts, account_id: int | None) -> dict[str, Any]:
    """One item of a ``POST /contacts`` array."""
    body: dict[str, Any] = {k: v for k, v in parts.flat.items() if v is not None}
    if parts.has_role and parts.role is not None:
        body["position"] = {"role": parts.role}
    address = {k: v for k, v in parts.address.items() if v is not None}
    if address:
        body["address"] = address
    custom = {k: v for k, v in parts.custom.items() if v is not None}
    if custom:
        body["custom"] = custom
    if account_id is not None:
        body["account"] = account_id
    return body


def update_body(
    parts: WriteParts, account_id: int | None, current: CurrentState | None
) -> dict[str, Any]:
    """The body of ``PUT /contacts/{id}`` changing only the fields in ``parts``.

    Nested values are sent whole. The address is updated *in place* through ``addresses[]``
    with its id, because what a bare ``address`` object does to a contact that already has one
    (replace it or add a second) is not documented; custom values are sent merged with the
    current ones, in case ``custom`` replaces rather than merges.
    """
    body: dict[str, Any] = dict(parts.flat)
    if parts.has_role:
        body["role"] = parts.role
    if parts.has_company:
        body["account"] = account_id  # an explicit null unlinks the account
    if parts.address:
        if current is not None and current.address_id is not None:
            merged = {**current.address, **parts.address}
            if all(v in (None, "") for v in merged.values()):
                body["addresses"] = [{"id": current.address_id, "archived": True}]
            else:
                body["addresses"] = [{"id": current.address_id, **merged}]
        else:
            address = {k: v for k, v in parts.address.items() if v is not None}
            if address:
                body["address"] = address
    if parts.custom:
        body["custom"] = {**(current.custom if current else {}), **parts.custom}
    return body
