"""The sandbox's organisations and their contacts: storage, Xero's write rules, rendering, seeds.

Write rules emulated (vendors.md §1.4-1.6):

* ``Name`` is required ("Contact Name cannot be empty.", the message Xero returns, quoted in
  waynerobinson/xeroizer#380) and unique among **active** contacts, case-insensitively (the
  spec's 400 example gives the message; the case rule is inferred).
* ``EmailAddress`` must look like an address and may not contain umlauts ("Email address must be
  valid.", as integrators quote it; secondary).
* Maximum lengths come from the spec's ``maxLength``; the message wording is inferred.
* ``ContactNumber`` is unique too (PUT fails on a taken one: secondary; message inferred).
* An update leaves out fields it does not send. ``Phones`` and ``Addresses`` are merged by their
  type, part by part (Xero always returns every slot, so slots behave like fields: inferred);
  ``ContactPersons`` is replaced whole (xero-node#306).
* Read-only fields (``UpdatedDateUTC``, ``Website``, ``IsSupplier``, ``IsCustomer``, balances)
  are ignored when sent, as Xero does, and counted so that tests can prove the connector never
  sends them.
* Restoring an archived contact fails while another active contact holds its name (agridigital).
"""

from __future__ import annotations

import copy
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from syncd.sample_people import shared_at

PHONE_SLOTS = ("DEFAULT", "DDI", "FAX", "MOBILE")
PHONE_TYPES = (*PHONE_SLOTS, "OFFICE")
ADDRESS_SLOTS = ("STREET", "POBOX")
PHONE_PARTS = {"PhoneNumber": 50, "PhoneAreaCode": 10, "PhoneCountryCode": 20}
ADDRESS_PARTS = {
    "AddressLine1": 500,
    "AddressLine2": 500,
    "AddressLine3": 500,
    "AddressLine4": 500,
    "City": 255,
    "Region": 255,
    "PostalCode": 50,
    "Country": 50,
    "AttentionTo": 255,
}
#: writable string fields and their maximum lengths (None: no limit in the spec)
SCALARS: dict[str, int | None] = {
    "Name": 255,
    "FirstName": 255,
    "LastName": 255,
    "EmailAddress": 255,
    "ContactNumber": 50,
    "AccountNumber": 50,
    "CompanyNumber": 50,
    "TaxNumber": 50,
    "BankAccountDetails": None,
    "DefaultCurrency": 3,
    "XeroNetworkKey": None,
}
READ_ONLY = frozenset(
    {
        "UpdatedDateUTC",
        "Website",
        "IsSupplier",
        "IsCustomer",
        "Balances",
        "Discount",
        "HasAttachments",
        "HasValidationErrors",
        "ValidationErrors",
        "StatusAttributeString",
        "MergedToContactID",
        "ContactGroups",
        "Attachments",
    }
)
STATUSES = ("ACTIVE", "ARCHIVED")
EMPTY_ID = "00000000-0000-0000-0000-000000000000"

_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


class Clock:
    """The sandbox's idea of now; tests move it forward to expire tokens without waiting."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def msdate(ms: int, with_offset: bool = True) -> str:
    return f"/Date({ms}+0000)/" if with_offset else f"/Date({ms})/"


@dataclass
class Org:
    """One Xero organisation (tenant) and its contacts, by ContactID in creation order."""

    tenant_id: str
    name: str
    clock: Clock
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_stamp: int = 0
    #: read-only fields clients sent (ignored, as Xero does)
    read_only_received: int = 0
    website_quirk: bool = False
    _active_names: dict[str, set[str]] | None = field(default=None, repr=False)
    #: told of every stored contact (ContactID, created?): the webhooks (sandbox_webhooks.py)
    on_change: Callable[[Org, str, bool], None] | None = field(default=None, repr=False)

    def stamp(self) -> int:
        """A strictly increasing UpdatedDateUTC in milliseconds."""
        self.last_stamp = max(int(self.clock.now() * 1000), self.last_stamp + 1)
        return self.last_stamp

    def new_id(self, rng: random.Random | None = None) -> str:
        if rng is None:
            return str(uuid.uuid4())
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    def _names(self) -> dict[str, set[str]]:
        """Active contacts by folded Name (built on first use, then kept up to date)."""
        if self._active_names is None:
            self._active_names = {}
            for contact in self.contacts.values():
                self._index(contact, add=True)
        return self._active_names

    def _index(self, contact: Mapping[str, Any], add: bool) -> None:
        if self._active_names is None or contact.get("ContactStatus") != "ACTIVE":
            return
        key = str(contact.get("Name") or "").strip().casefold()
        holders = self._active_names.setdefault(key, set())
        if add:
            holders.add(str(contact["ContactID"]))
        else:
            holders.discard(str(contact["ContactID"]))

    def _keep(self, contact: dict[str, Any]) -> None:
        previous = self.contacts.get(contact["ContactID"])
        if previous is not None:
            self._index(previous, add=False)
        self.contacts[contact["ContactID"]] = contact
        self._index(contact, add=True)
        if self.on_change is not None:
            self.on_change(self, str(contact["ContactID"]), previous is None)

    def active_name_holder(self, name: str, except_id: str | None) -> dict[str, Any] | None:
        for contact_id in self._names().get(name.strip().casefold(), ()):
            if contact_id != except_id:
                return self.contacts[contact_id]
        return None

    def number_holder(self, number: str, except_id: str | None) -> dict[str, Any] | None:
        wanted = number.strip().casefold()
        for contact_id, contact in self.contacts.items():
            if contact_id != except_id and contact.get("ContactNumber", "").casefold() == wanted:
                return contact
        return None

    # --- writes ----------------------------------------------------------------------------

    def save(
        self, incoming: Mapping[str, Any], allow_update: bool
    ) -> tuple[dict[str, Any] | None, list[str]]:
        """Apply one submitted contact: ``(stored contact, [])`` or ``(None, [messages])``.

        ``allow_update`` is POST's update-or-create; PUT only creates (a ContactID sent with PUT
        is ignored: Xero assigns ids, Xero-NetStandard#226).
        """
        self.read_only_received += sum(1 for key in incoming if key in READ_ONLY)
        existing = None
        if allow_update:
            if incoming.get("ContactID") and incoming["ContactID"] != EMPTY_ID:
                existing = self.contacts.get(str(incoming["ContactID"]))
                if existing is None:
                    return None, ["The contact could not be found."]
            elif incoming.get("ContactNumber"):
                existing = self.number_holder(str(incoming["ContactNumber"]), None)
        candidate = copy.deepcopy(existing) if existing is not None else blank_contact("")
        errors = merge(candidate, incoming)
        if existing is not None and self.website_quirk and not _valid_website(existing):
            # Xero validates the read-only Website on every update (Xero-NetStandard#434, #623)
            errors.append("Website must be valid.")
        errors += self.validate(candidate, existing["ContactID"] if existing else None)
        if errors:
            return None, errors
        if existing is None:
            candidate["ContactID"] = self.new_id()
        candidate["_updated"] = self.stamp()
        self._keep(candidate)
        return candidate, []

    def validate(self, contact: Mapping[str, Any], contact_id: str | None) -> list[str]:
        errors: list[str] = []
        name = str(contact.get("Name") or "")
        if not name.strip():
            errors.append("Contact Name cannot be empty.")
        for key, limit in SCALARS.items():
            value = str(contact.get(key) or "")
            if limit is not None and len(value) > limit:
                errors.append(f"{key} must not be more than {limit} characters long.")
        email = str(contact.get("EmailAddress") or "").strip()
        if email and (not _EMAIL.match(email) or not email.isascii()):
            errors.append("Email address must be valid.")
        for phone in contact.get("Phones", ()):
            for part, limit in PHONE_PARTS.items():
                if len(str(phone.get(part) or "")) > limit:
                    errors.append(f"{part} must not be more than {limit} characters long.")
        for address in contact.get("Addresses", ()):
            for part, limit in ADDRESS_PARTS.items():
                if len(str(address.get(part) or "")) > limit:
                    errors.append(f"{part} must not be more than {limit} characters long.")
        if contact.get("ContactStatus") not in STATUSES:
            errors.append("ContactStatus must be ACTIVE or ARCHIVED.")
        active = contact.get("ContactStatus") == "ACTIVE"
        if name.strip() and active and self.active_name_holder(name, contact_id) is not None:
            errors.append(
                f"The contact name {name} is already assigned to another contact. The "
                "contact name must be unique across all active contacts."
            )
        number = str(contact.get("ContactNumber") or "")
        if number and self.number_holder(number, contact_id) is not None:
            errors.append(f"The contact number {number} is already assigned to another contact.")
        return errors

    def put_raw(self, contact: Mapping[str, Any], rng: random.Random | None = None) -> str:
        """Store a contact as a person using Xero would, without API validation (seeds, tests)."""
        stored = blank_contact(str(contact.get("ContactID") or self.new_id(rng)))
        existing = self.contacts.get(stored["ContactID"])
        if existing is not None:
            stored = copy.deepcopy(existing)
        merge(stored, contact, keep_read_only=True)
        stamp = contact.get("_updated")
        stored["_updated"] = int(stamp) if isinstance(stamp, int) else self.stamp()
        self.last_stamp = max(self.last_stamp, stored["_updated"])
        self._keep(stored)
        return str(stored["ContactID"])


def blank_contact(contact_id: str) -> dict[str, Any]:
    return {
        "ContactID": contact_id,
        "ContactStatus": "ACTIVE",
        "Name": "",
        "FirstName": "",
        "LastName": "",
        "EmailAddress": "",
        "BankAccountDetails": "",
        "Addresses": [
            {"AddressType": kind, **dict.fromkeys(ADDRESS_PARTS, "")} for kind in ADDRESS_SLOTS
        ],
        "Phones": [
            {"PhoneType": kind, "PhoneNumber": "", "PhoneAreaCode": "", "PhoneCountryCode": ""}
            for kind in PHONE_SLOTS
        ],
        "ContactGroups": [],
        "ContactPersons": [],
        "IsSupplier": False,
        "IsCustomer": False,
        "_updated": 0,
    }


def merge(
    stored: dict[str, Any], incoming: Mapping[str, Any], keep_read_only: bool = False
) -> list[str]:
    """Apply the fields ``incoming`` carries to ``stored``; returns shape errors."""
    errors: list[str] = []
    for key, value in incoming.items():
        if key in ("ContactID", "_updated"):
            continue
        if key in READ_ONLY:
            if keep_read_only:
                stored[key] = copy.deepcopy(value)
            continue
        if key == "ContactStatus":
            stored[key] = str(value or "ACTIVE").upper()
        elif key == "Phones":
            errors += _merge_slots(stored, "Phones", "PhoneType", PHONE_TYPES, PHONE_PARTS, value)
        elif key == "Addresses":
            errors += _merge_slots(
                stored, "Addresses", "AddressType", ADDRESS_SLOTS, ADDRESS_PARTS, value
            )
        elif key == "ContactPersons":
            stored[key] = list(value or [])
        elif key in SCALARS:
            stored[key] = "" if value is None else str(value)
        else:
            # other Contact properties (PaymentTerms, tax types, ...) are kept as sent
            stored[key] = copy.deepcopy(value)
    return errors


def _merge_slots(
    stored: dict[str, Any],
    key: str,
    type_key: str,
    kinds: Iterable[str],
    parts: Mapping[str, int],
    incoming: object,
) -> list[str]:
    if not isinstance(incoming, list):
        return [f"{key} must be a list."]
    slots = {slot[type_key]: slot for slot in stored.setdefault(key, [])}
    errors = []
    for item in incoming:
        kind = str((item or {}).get(type_key) or "").upper()
        if kind not in kinds:
            errors.append(f"{type_key} {kind or '(none)'} is not valid.")
            continue
        slot = slots.get(kind)
        if slot is None:
            slot = {type_key: kind, **dict.fromkeys(parts, "")}
            stored[key].append(slot)
            slots[kind] = slot
        for part in parts:
            if part in item:
                slot[part] = "" if item[part] is None else str(item[part])
    return errors


def _valid_website(contact: Mapping[str, Any]) -> bool:
    website = str(contact.get("Website") or "")
    return not website or website.startswith(("http://", "https://"))


def _copied(value: Any) -> Any:
    """A copy of stored JSON data (what ``copy.deepcopy`` gives, at a fraction of its cost: a
    page of 1,000 contacts is rendered for every listing request)."""
    if value.__class__ is list:
        return [_copied(item) for item in value]
    if value.__class__ is dict:
        return {key: _copied(item) for key, item in value.items()}
    return value if value.__class__ in (str, int, float, bool) else copy.deepcopy(value)


def render(contact: Mapping[str, Any], paged: bool, with_offset: bool = True) -> dict[str, Any]:
    """A stored contact as GET /Contacts shows it."""
    shown: dict[str, Any] = {
        key: _copied(value)
        for key, value in contact.items()
        if not key.startswith("_") and value not in (None,)
    }
    for key in ("ContactNumber", "AccountNumber", "CompanyNumber", "TaxNumber", "Website"):
        if not shown.get(key):
            shown.pop(key, None)
    shown["UpdatedDateUTC"] = msdate(int(contact["_updated"]), with_offset)
    shown["HasAttachments"] = False
    shown["HasValidationErrors"] = False
    if paged:
        # these come only with paging, summaryOnly or single fetches (the Contact schema says so)
        shown.setdefault("SalesDefaultLineAmountType", "INCLUSIVE")
        shown.setdefault("PurchasesDefaultLineAmountType", "INCLUSIVE")
    else:
        # unpaged lists leave ContactPersons out (vendors.md §1.3)
        shown.pop("ContactPersons", None)
    return shown


def echo(incoming: Mapping[str, Any], errors: list[str], contact_id: str | None) -> dict[str, Any]:
    """A refused element as Xero returns it: what was sent, with its ValidationErrors.

    Over-long strings are cut to the spec's limits in the echo so that the answer itself stays
    valid against the spec (Xero echoes them whole; a client reads only ValidationErrors).
    """
    element: dict[str, Any] = {}
    for key, value in incoming.items():
        if key in READ_ONLY or key.startswith("_"):
            continue
        limit = SCALARS.get(key)
        if isinstance(value, str) and limit is not None:
            value = value[:limit]
        if key in ("Phones", "Addresses") and isinstance(value, list):
            parts = PHONE_PARTS if key == "Phones" else ADDRESS_PARTS
            value = [
                {
                    k: (v[: parts[k]] if isinstance(v, str) and k in parts else v)
                    for k, v in item.items()
                }
                for item in value
                if isinstance(item, dict)
            ]
        element[key] = value
    element["ContactID"] = contact_id or EMPTY_ID
    element["HasValidationErrors"] = True
    element["ValidationErrors"] = [{"Message": message} for message in errors]
    element["StatusAttributeString"] = "ERROR"
    return element


# --- seed data ------------------------------------------------------------------------------

FIRST = (
    "Jane", "John", "Aoife", "Zoë", "José", "Søren", "Łukasz", "Chloé", "Björn", "Mei",
    "Oluwaseun", "Priya", "Mohammed", "Siobhán", "Tomás", "Anaïs", "Yuki", "Emma", "Liam", "Noah",
    "Olivia", "Ava", "Lucas", "Amélie", "Grzegorz", "Ngọc", "Fatima", "Kwame", "Ingrid", "Rhys",
)  # fmt: skip
LAST = (
    "Smith", "Jones", "Müller", "O'Brien", "García", "Østergaard", "Kowalski", "Nakamura",
    "Dupont", "Taylor", "Brown", "Nguyễn", "Okafor", "Patel", "Ní Bhriain", "van der Berg",
    "Williams", "Evans", "Schäfer", "Svensson", "Rossi", "Kim", "Haddad", "Mensah", "Lindqvist",
)  # fmt: skip
COMPANIES = (
    "Acme Ltd", "Bayside Club", "Ridgeway University", "City Agency", "Marine Systems",
    "Petrie McLoud Watson & Associates", "Hamilton Smith Ltd", "Boom FM", "Young Bros Transport",
    "Port & Philip Freight", "Swanston Security", "Capital Cab Co", "Gable Print", "DIISR",
    "Corporate Cleaning Services", "Berry Brew", "Café Ümlaut GmbH", "Øresund Logistics ApS",
    "Ship Shape Sailing", "Truxton Property Management",
)  # fmt: skip
CITIES = (
    ("London", "", "EC1A 1BB", "United Kingdom"),
    ("Manchester", "Greater Manchester", "M1 1AE", "United Kingdom"),
    ("Wellington", "", "6011", "New Zealand"),
    ("Auckland", "", "1010", "New Zealand"),
    ("Palo Alto", "CA", "94020", "United States"),
    ("Sydney", "NSW", "2000", "Australia"),
    ("København", "", "1050", "Denmark"),
)
STREETS = (
    "High Street",
    "Station Road",
    "Church Lane",
    "Queen St",
    "Rue de la Paix",
    "Kärntner Straße",
)


def seed_org(org: Org, rng: random.Random, count: int, shared_seed: int | None = None) -> None:
    """``count`` realistic contacts: people and organisations, some without email, unicode,
    repeated person names (the later ones archived or suffixed, as Xero forces), long values.

    With ``shared_seed``, every third contact's person is one of the people every sandbox
    seeded with that seed holds (:mod:`syncd.sample_people`), so that two vendors' sandboxes
    started with the same seed overlap."""
    now_ms = int(org.clock.now() * 1000)
    vip_group = {"ContactGroupID": org.new_id(rng), "Name": "VIP", "Status": "ACTIVE"}
    for index in range(count):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        person = rng.random() < 0.7
        company = rng.choice(COMPANIES)
        name = f"{first} {last}" if person else company
        domain = re.sub(r"[^a-z]", "", company.lower().encode("ascii", "ignore").decode())[:14]
        local = re.sub(r"[^a-z.]", "", f"{first}.{last}".lower().encode("ascii", "ignore").decode())
        email = f"{local or 'info'}@{domain or 'example'}.example" if rng.random() > 0.1 else ""
        if email and rng.random() < 0.05:
            email = email.title()  # mixed case, as people type them
        shared = shared_at(shared_seed, index)
        if shared is not None:
            first, last, email = shared.first_name, shared.last_name, shared.email
            name = f"{first} {last}" if person else company
        archived = rng.random() < 0.05
        if org.active_name_holder(name, None) is not None:
            # Xero allows a repeated Name only on archived contacts; people add a middle initial
            # or, as integrators do, a suffix
            if rng.random() < 0.15:
                archived = True
            elif (
                person
                and org.active_name_holder(f"{first} {chr(65 + index % 26)}. {last}", None) is None
            ):
                name = f"{first} {chr(65 + index % 26)}. {last}"
            else:
                name = f"{name} - {index}"
        if index % 97 == 13:
            name = (name + " " + "Ltd " * 80)[:250].rstrip()  # long but allowed
        city, region, postal, country = rng.choice(CITIES)
        street = f"{rng.randint(1, 250)} {rng.choice(STREETS)}"
        if index % 89 == 7:
            street = ("Unit 4, " * 70)[:480]
        contact: dict[str, Any] = {
            "ContactStatus": "ARCHIVED" if archived else "ACTIVE",
            "Name": name,
            "FirstName": first if person or rng.random() < 0.5 else "",
            "LastName": last if person or rng.random() < 0.5 else "",
            "EmailAddress": email,
            "Addresses": [
                {
                    "AddressType": "STREET",
                    "AddressLine1": street if rng.random() < 0.8 else "",
                    "AddressLine2": "Floor 2" if rng.random() < 0.1 else "",
                    "City": city,
                    "Region": region,
                    "PostalCode": postal,
                    "Country": country,
                },
                {
                    "AddressType": "POBOX",
                    "AddressLine1": "PO Box 123" if rng.random() < 0.1 else "",
                },
            ],
            "Phones": [
                {
                    "PhoneType": "DEFAULT",
                    "PhoneCountryCode": "44" if rng.random() < 0.3 else "",
                    "PhoneAreaCode": rng.choice(("20", "161", "(626)", "")),
                    "PhoneNumber": f"{rng.randint(200, 999)} {rng.randint(1000, 9999)}"
                    if rng.random() < 0.7
                    else "",
                },
                {
                    "PhoneType": "MOBILE",
                    "PhoneNumber": f"07700 900{rng.randint(100, 999)}"
                    if rng.random() < 0.5
                    else "",
                },
            ],
            "IsCustomer": rng.random() < 0.5,
            "IsSupplier": rng.random() < 0.2,
            "_updated": now_ms - rng.randint(86_400_000, 365 * 86_400_000),
        }
        if rng.random() < 0.2:
            contact["ContactNumber"] = f"CUST-{index:04d}"
        if rng.random() < 0.2:
            contact["AccountNumber"] = f"{rng.randint(10000, 99999)}"
        if rng.random() < 0.1:
            contact["Website"] = f"https://{domain or 'example'}.example"
        if rng.random() < 0.1:
            contact["ContactGroups"] = [dict(vip_group)]
        org.put_raw(contact, rng)
