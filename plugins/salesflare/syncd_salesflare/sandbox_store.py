"""The emulated Salesflare account: contacts, accounts, tags, custom fields, and their rules.

Write payloads are validated the way Salesflare's Hapi/Joi server does (vendors.md §2.4-2.5):
unknown keys are refused, ``email`` is trimmed and lower-cased before it is checked, a create
needs one of the name fields or an email, and the *first* problem found refuses the whole payload
(Joi's default ``abortEarly``), reported with its path (``"2.email"``) and label (``"[2].email"``).

Behaviours vendors.md does not settle are emulated as follows (each is named in the README):

* ``POST /contacts?force=false`` for an email that exists creates nothing and answers the existing
  contact's id in that item's place (inferred: the spec only says it is "not created").
* ``PUT`` with ``address`` updates the contact's first address (adds one when there is none);
  ``addresses[]`` items with an ``id`` update that address, without one add an address.
  ``position``/``role`` update the first position. ``custom`` merges key by key. ``tags``
  replace the contact's tags. (All inferred.)
* ``GET /contacts`` without ``order_by`` sorts by name, then id (unknown; the connector always
  sends ``order_by``). ``email`` filters exactly (case-insensitive), ``name`` and ``search`` by
  substring.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from syncd_salesflare.sandbox_email import email_problem

NAME_KEYS = ("name", "email", "prefix", "firstname", "middle", "lastname", "suffix")
TEXT_KEYS = (
    "prefix",
    "firstname",
    "middle",
    "lastname",
    "suffix",
    "name",
    "domain",
    "picture",
    "phone_number",
    "mobile_phone_number",
    "home_phone_number",
    "fax_number",
    "opt-out_campaign",
)
BOOL_KEYS = ("opt-out", "bounced")
DATE_KEYS = ("birth_date", "opt-out_date", "bounced_date")
ADDRESS_FIELDS = ("city", "country", "state_region", "street", "type", "zip", "region")
POSITION_FIELDS = ("organisation", "role")
CREATE_KEYS = frozenset(
    (
        *TEXT_KEYS,
        *BOOL_KEYS,
        *DATE_KEYS,
        "email",
        "owner",
        "account",
        "files",
        "tags",
        "address",
        "addresses",
        "phone_numbers",
        "position",
        "positions",
        "social_profiles",
        "custom",
    )
)
UPDATE_KEYS = CREATE_KEYS | {"role", "archived"}
DEFAULT_SORT_KEYS = (
    "id",
    "name",
    "email",
    "firstname",
    "lastname",
    "creation_date",
    "modification_date",
)


@dataclass
class Invalid(Exception):
    """One Joi validation failure: refuses the whole payload."""

    path: list[str | int]
    message_tail: str  # what follows the quoted label: "must be a valid email"
    type: str
    constraint: str
    #: where the value came from, as Hapi names it: ``payload``, ``query`` or ``params``
    source: str = "payload"

    def label(self) -> str:
        out = ""
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
        return out or "value"

    def body(self) -> dict[str, Any]:
        message = f'"{self.label()}" {self.message_tail}'
        return {
            "statusCode": 400,
            "error": "Bad Request",
            "message": message,
            "validation": {
                "source": self.source,
                "errors": [
                    {
                        "path": ".".join(str(p) for p in self.path),
                        "message": message,
                        "type": self.type,
                        "constraint": self.constraint,
                        "label": self.label(),
                    }
                ],
            },
        }


class NotFound(Exception):
    """A referenced record does not exist (answered as Boom's 404)."""


def parse_date(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def iso(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass
class CustomField:
    api_field: str
    name: str
    type: str = "text"  # text | number


@dataclass
class SalesflareState:
    max_batch: int = 100
    sort_keys: tuple[str, ...] = DEFAULT_SORT_KEYS
    contacts: dict[int, dict[str, Any]] = field(default_factory=dict)
    accounts: dict[int, dict[str, Any]] = field(default_factory=dict)
    tags: dict[str, dict[str, Any]] = field(default_factory=dict)
    custom_fields: dict[str, CustomField] = field(default_factory=dict)
    user: dict[str, Any] = field(
        default_factory=lambda: {
            "id": 276596246,
            "name": "Sandbox User",
            "email": "sandbox.user@example.com",
            "picture": None,
        }
    )
    #: called after each ``GET /contacts`` page is computed (tests change the data there)
    after_page: Callable[[SalesflareState], None] | None = None
    #: API requests being answered now, and the most at once (tests and benchmarks check that
    #: a client stays within its concurrency)
    in_flight: int = 0
    most_in_flight: int = 0
    _next_contact: int = 285528841
    _next_account: int = 13397916
    _next_other: int = 35006927
    _last_ms: int = 0

    # --- ids and time ---------------------------------------------------------------------

    def now(self) -> str:
        """Wall-clock time in ms, strictly increasing so modification dates never tie."""
        ms = max(int(datetime.now(UTC).timestamp() * 1000), self._last_ms + 1)
        self._last_ms = ms
        return iso(datetime.fromtimestamp(ms / 1000, UTC))

    def new_contact_id(self) -> int:
        self._next_contact += 1
        return self._next_contact

    def new_account_id(self) -> int:
        self._next_account += 1
        return self._next_account

    def new_other_id(self) -> int:
        self._next_other += 1
        return self._next_other

    # --- reading --------------------------------------------------------------------------

    def render_contact(self, contact: Mapping[str, Any]) -> dict[str, Any]:
        out = {k: copy.deepcopy(v) for k, v in contact.items() if not k.startswith("_")}
        account = self.accounts.get(contact.get("account") or -1)
        out["account"] = (
            {k: account.get(k) for k in ("id", "picture", "name", "domain")} if account else None
        )
        out["owner"] = dict(self.user)
        out["addresses"] = [a for a in out.get("addresses", []) if not a.get("archived")]
        out["positions"] = [p for p in out.get("positions", []) if not p.get("archived")]
        out["phone_numbers"] = [p for p in out.get("phone_numbers", []) if not p.get("archived")]
        first = out["positions"][0] if out["positions"] else {}
        out["organisation"] = first.get("organisation")
        out["role"] = first.get("role")
        for address in out["addresses"]:
            address.pop("archived", None)
        return out

    def render_account(self, account: Mapping[str, Any]) -> dict[str, Any]:
        return {k: copy.deepcopy(v) for k, v in account.items() if not k.startswith("_")}

    def email_index(self) -> dict[str, int]:
        """Email → the oldest contact holding it, archived ones included."""
        index: dict[str, int] = {}
        for contact_id in sorted(self.contacts, reverse=True):
            email = self.contacts[contact_id].get("email")
            if email:
                index[email] = contact_id
        return index

    def sort(self, records: list[dict[str, Any]], order_by: list[str]) -> list[dict[str, Any]]:
        keys = [(k.split()[0], k.split()[-1].lower() == "desc") for k in order_by] or [
            ("name", False)
        ]
        keys.append(("id", False))  # ties broken by id: every order is total and stable
        result = list(records)
        for key, descending in reversed(keys):
            present = [r for r in result if r.get(key) is not None]
            missing = [r for r in result if r.get(key) is None]
            present.sort(key=_sort_key(key), reverse=descending)
            result = present + missing
        return result

    # --- validating -----------------------------------------------------------------------

    def validate_contact(
        self, item: Any, prefix: list[str | int], *, creating: bool
    ) -> dict[str, Any]:
        """A validated, converted copy of one contact payload (raises :class:`Invalid`)."""
        if not isinstance(item, dict):
            raise Invalid(prefix, "must be of type object", "object.base", "type")
        allowed = CREATE_KEYS if creating else UPDATE_KEYS
        out: dict[str, Any] = {}
        for key, value in item.items():
            path = [*prefix, key]
            if key not in allowed:
                raise Invalid(path, "is not allowed", "object.unknown", "unknown")
            out[key] = self._validate_value(key, value, path, creating=creating)
        if creating and not any(out.get(k) not in (None, "") for k in NAME_KEYS):
            raise Invalid(
                prefix,
                "must contain at least one of [name, email, prefix, firstname, middle, "
                "lastname, suffix]",
                "object",
                "missing",
            )
        return out

    def _validate_value(
        self, key: str, value: Any, path: list[str | int], *, creating: bool
    ) -> Any:
        if key == "email":
            text = _text(value, path)
            if text is None:
                return None
            text = text.strip().lower()
            if len(text) > 1000:
                raise Invalid(
                    path,
                    "length must be less than or equal to 1000 characters long",
                    "string",
                    "max",
                )
            if text and email_problem(text) is not None:
                raise Invalid(path, "must be a valid email", "string", "email")
            return text or None
        if key in TEXT_KEYS or key == "role":
            text = _text(value, path)
            if key == "picture" and creating and text and len(text) > 500:
                raise Invalid(
                    path,
                    "length must be less than or equal to 500 characters long",
                    "string",
                    "max",
                )
            return text
        if key in BOOL_KEYS or key == "archived":
            if value is None or isinstance(value, bool):
                return value
            raise Invalid(path, "must be a boolean", "boolean", "base")
        if key in DATE_KEYS:
            if value is None:
                return None
            if parse_date(value) is None:
                raise Invalid(path, "must be a valid date", "date", "base")
            return value
        if key in ("owner", "account"):
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise Invalid(path, "must be a number", "number", "base")
            try:
                return int(value)
            except ValueError:
                raise Invalid(path, "must be a number", "number", "base") from None
        if key == "tags":
            return [self._tag(v, [*path, i]) for i, v in enumerate(_array(value, path))]
        if key == "address":
            return _object(value, path, ADDRESS_FIELDS)
        if key == "addresses":
            fields: tuple[str, ...] = ADDRESS_FIELDS
            if not creating:
                fields = (*fields, "id", "archived")
            return [_object(v, [*path, i], fields) for i, v in enumerate(_array(value, path))]
        if key == "position":
            return _object(value, path, POSITION_FIELDS)
        if key == "positions":
            fields = (*POSITION_FIELDS, "start_date", "end_date", "current", "primary")
            if not creating:
                fields = (*fields, "id", "archived")
            return [_object(v, [*path, i], fields) for i, v in enumerate(_array(value, path))]
        if key == "phone_numbers":
            fields = ("number", "type")
            if not creating:
                fields = (*fields, "id", "archived")
            numbers = [_object(v, [*path, i], fields) for i, v in enumerate(_array(value, path))]
            for i, number in enumerate(numbers):
                if not number.get("number") and not number.get("id"):
                    raise Invalid([*path, i, "number"], "is required", "any", "required")
            return numbers
        if key == "custom":
            return self._custom(value, path)
        # files, social_profiles: accepted as given
        return _array(value, path)

    def _tag(self, value: Any, path: list[str | int]) -> str:
        if isinstance(value, str) and value.strip():
            return value.strip()
        if isinstance(value, dict) and isinstance(value.get("name"), str):
            return str(value["name"]).strip()
        if isinstance(value, dict) and isinstance(value.get("id"), int):
            for tag in self.tags.values():
                if tag["id"] == value["id"]:
                    return str(tag["name"])
        raise Invalid(path, "must be a string", "string", "base")

    def _custom(self, value: Any, path: list[str | int]) -> dict[str, Any] | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise Invalid(path, "must be of type object", "object.base", "type")
        out: dict[str, Any] = {}
        for key, item in value.items():
            spec = self.custom_fields.get(key)
            if spec is None:
                raise Invalid([*path, key], "is not allowed", "object.unknown", "unknown")
            if item is None or item == "":
                out[key] = None
            elif spec.type == "number":
                try:  # Joi converts numeric strings by default
                    number = float(item)
                except (TypeError, ValueError):
                    raise Invalid([*path, key], "must be a number", "number", "base") from None
                out[key] = int(number) if number.is_integer() else number
            else:
                out[key] = _text(item, [*path, key])
        return out

    # --- writing --------------------------------------------------------------------------

    def tag_objects(self, names: Iterable[str]) -> list[dict[str, Any]]:
        result = []
        for name in names:
            tag = self.tags.get(name.casefold())
            if tag is None:
                tag = self.tags[name.casefold()] = {"id": self.new_other_id(), "name": name}
            if tag not in result:
                result.append(dict(tag))
        return result

    def check_account(self, account_id: Any) -> None:
        if account_id is not None and account_id not in self.accounts:
            raise NotFound("Account not found")

    def create_contact(
        self, values: dict[str, Any], *, force: bool, index: dict[str, int] | None = None
    ) -> int:
        """Create one contact; ``index`` (from :meth:`email_index`) is kept up to date."""
        index = self.email_index() if index is None else index
        email = values.get("email")
        if not force and email and email in index:
            return index[email]  # force=false: not created, the existing id is answered
        self.check_account(values.get("account"))
        now = self.now()
        contact: dict[str, Any] = {
            "id": self.new_contact_id(),
            **{k: None for k in TEXT_KEYS},
            "email": None,
            "creation_date": now,
            "modification_date": now,
            "archived": False,
            "not_viewed": True,
            "can_edit": True,
            "account": None,
            "tags": [],
            "addresses": [],
            "phone_numbers": [],
            "positions": [],
            "social_profiles": [],
            "custom": None,
            "birth_date": None,
            "opt-out": False,
            "bounced": False,
            "last_email_date": None,
            "last_meeting_date": None,
            "connection_strength": None,
            "_name_set": False,
        }
        self.contacts[contact["id"]] = contact
        self._apply(contact, values, creating=True)
        contact["modification_date"] = now
        if contact.get("email"):
            index.setdefault(contact["email"], contact["id"])
        return int(contact["id"])

    def update_contact(self, contact_id: int, values: dict[str, Any]) -> None:
        contact = self.contacts.get(contact_id)
        if contact is None:
            raise NotFound("Not Found")
        self.check_account(values.get("account"))
        self._apply(contact, values, creating=False)
        contact["modification_date"] = self.now()

    def _apply(self, contact: dict[str, Any], values: dict[str, Any], *, creating: bool) -> None:
        for key, value in values.items():
            if key in (*TEXT_KEYS, *BOOL_KEYS, *DATE_KEYS, "email", "owner", "account"):
                contact[key] = value
            elif key == "archived":
                contact["archived"] = bool(value)
            elif key == "tags":
                contact["tags"] = self.tag_objects(value)
            elif key == "address":
                self._set_first(contact, "addresses", value)
            elif key == "addresses":
                for item in value:
                    self._merge_item(contact, "addresses", item)
            elif key == "position":
                self._set_first(contact, "positions", value)
            elif key == "positions":
                for item in value:
                    self._merge_item(contact, "positions", item)
            elif key == "role":
                self._set_first(contact, "positions", {"role": value})
            elif key == "phone_numbers":
                for item in value:
                    self._merge_item(contact, "phone_numbers", item)
            elif key == "custom":
                merged = dict(contact.get("custom") or {})
                for name, item in (value or {}).items():
                    if item is None:
                        merged.pop(name, None)
                    else:
                        merged[name] = item
                contact["custom"] = merged or None
            elif key == "social_profiles":
                contact["social_profiles"] = list(value)
        if "name" in values:
            contact["_name_set"] = bool(values["name"])
        if not contact.get("_name_set"):
            contact["name"] = _derived_name(contact)
        if "email" in values and "domain" not in values:
            email = contact.get("email") or ""
            contact["domain"] = email.split("@", 1)[1] if "@" in email else None

    def _set_first(self, contact: dict[str, Any], key: str, values: dict[str, Any]) -> None:
        items = [i for i in contact[key] if not i.get("archived")]
        if items:
            items[0].update(values)
        else:
            contact[key].append({"id": self.new_other_id(), **values})

    def _merge_item(self, contact: dict[str, Any], key: str, values: dict[str, Any]) -> None:
        item_id = values.get("id")
        if item_id is not None:
            for item in contact[key]:
                if item.get("id") == item_id:
                    item.update(values)
                    return
            raise NotFound(f"{key[:-1].replace('_', ' ')} {item_id} not found")
        contact[key].append({**values, "id": self.new_other_id()})

    def create_account(self, values: Mapping[str, Any]) -> int:
        now = self.now()
        account = {
            "id": self.new_account_id(),
            "name": values.get("name"),
            "domain": values.get("domain"),
            "website": values.get("website"),
            "picture": None,
            "size": values.get("size"),
            "description": values.get("description"),
            "owner": self.user["id"],
            "tags": [],
            "phone_numbers": [],
            "social_profiles": [],
            "creation_date": now,
            "modification_date": now,
        }
        self.accounts[account["id"]] = account
        return int(account["id"])


def _derived_name(contact: Mapping[str, Any]) -> str | None:
    parts = [contact.get(k) for k in ("prefix", "firstname", "middle", "lastname", "suffix")]
    name = " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
    if name:
        return name
    email = contact.get("email")
    return email.split("@", 1)[0] if isinstance(email, str) and email else None


def _sort_key(key: str) -> Callable[[dict[str, Any]], Any]:
    def value(record: dict[str, Any]) -> Any:
        found = record.get(key)
        return found.casefold() if isinstance(found, str) else found

    return value


def _text(value: Any, path: list[str | int]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise Invalid(path, "must be a string", "string", "base")
    return value


def _array(value: Any, path: list[str | int]) -> list[Any]:
    if not isinstance(value, list):
        raise Invalid(path, "must be an array", "array", "base")
    return value


def _object(value: Any, path: list[str | int], allowed: Iterable[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Invalid(path, "must be of type object", "object.base", "type")
    allowed = tuple(allowed)
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key not in allowed:
            raise Invalid([*path, key], "is not allowed", "object.unknown", "unknown")
        if key == "country" and isinstance(item, str) and len(item) > 50:
            raise Invalid(
                [*path, key],
                "length must be less than or equal to 50 characters long",
                "string",
                "max",
            )
        if key == "region" and "state_region" not in value:
            key = "state_region"  # the deprecated spelling lands in the same place
        out[key] = item
    return out
