"""Realistic sample data for the sandbox, the same for the same seed.

Contacts come with the mess real CRMs hold: missing emails, people sharing a name, the odd pair
of contacts sharing an email (Salesflare's default ``force=true`` lets that happen), unicode
names and places, very long values, archived contacts, phone numbers typed every which way,
tags, addresses, custom field values, and two accounts with the same name.
"""

from __future__ import annotations

import random
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Any

from syncd.sample_people import shared_at
from syncd_salesflare.sandbox_store import CustomField, SalesflareState, iso

FIRST_NAMES = (
    "Anna", "Bart", "Chloé", "Dmitri", "Élodie", "Farah", "Günther", "Hana", "Ines", "Jeroen",
    "Kwame", "Łukasz", "Marie", "Nguyễn", "Oğuz", "Priya", "Quentin", "Renée", "Søren", "Tomás",
    "Uma", "Valentina", "Wei", "Xavier", "Yuki", "Zoë", "José", "Siobhán", "Björk", "李",
)  # fmt: skip
LAST_NAMES = (
    "Janssens", "Peeters", "Müller", "O'Brien", "García Márquez", "Smith", "Nakamura", "Dubois",
    "Kowalski", "van der Berg", "Østergaard", "Ivanova", "Haddad", "Silva", "Chen", "Okafor",
    "Żółkiewski", "Fernández", "Lefèvre", "Novák", "Smith", "Jones", "Brown", "王",
)  # fmt: skip
COMPANIES = (
    ("Acme", "acme.test"), ("Globex", "globex.test"), ("Initech", "initech.test"),
    ("Umbrella Corporation", "umbrella.test"), ("Stark Industries", "stark.test"),
    ("Wayne Enterprises", "wayne.test"), ("Soylent", "soylent.test"),
    ("Tyrell Corporation", "tyrell.test"), ("Hooli", "hooli.test"),
    ("Pied Piper", "piedpiper.test"), ("Vandelay Industries", "vandelay.test"),
    ("Brasserie Ümlaut", "umlaut.test"), ("Société Générale de Test", "sgt.test"),
    ("株式会社テスト", "kabushiki.test"), ("Øresund Logistik", "oresund.test"),
)  # fmt: skip
ROLES = ("CEO", "CTO", "Head of Sales", "Account Manager", "Bookkeeper", "Founder", None)
TAGS = ("customer", "lead", "partner", "vip", "newsletter", "supplier")
CITIES = (
    ("Gent", "Oost-Vlaanderen", "9000", "Belgium"),
    ("London", "Greater London", "EC1A 1BB", "United Kingdom"),
    ("München", "Bayern", "80331", "Germany"),
    ("São Paulo", "SP", "01000-000", "Brazil"),
    ("Kraków", "Małopolskie", "30-001", "Poland"),
    ("New York", "NY", "10001", "United States"),
    ("Zürich", "ZH", "8001", "Switzerland"),
)
PHONES = (
    "+44 20 7946 0{n:03d}",
    "(555) 01{n:02d}-1234",
    "0470 12 {n:02d} 56",
    "+32 9 {n:03d} 45 67",
)
LONG = "Senior Vice President of Strategic Partnerships, Channel Enablement and Ecosystem " * 3
EPOCH = datetime(2023, 1, 1, tzinfo=UTC)

DEFAULT_CUSTOM_FIELDS = (
    # the fields the Xero ⇄ Salesflare example maps Xero's numbers to
    CustomField("xero_account_number", "Xero account number"),
    CustomField("xero_contact_number", "Xero contact number"),
    CustomField("xero_company_number", "Xero company number"),
    CustomField("source", "Lead source"),
    CustomField("lifetime_value", "Lifetime value", "number"),
)


def install_custom_fields(state: SalesflareState, extra: list[str] | None = None) -> None:
    for spec in DEFAULT_CUSTOM_FIELDS:
        state.custom_fields[spec.api_field] = CustomField(spec.api_field, spec.name, spec.type)
    for api_field in extra or ():
        state.custom_fields.setdefault(api_field, CustomField(api_field, api_field))


def seed(state: SalesflareState, seed_value: int, count: int) -> None:
    """``count`` contacts drawn from ``seed_value``; every third is one of the people every
    sandbox seeded with that value holds (:mod:`syncd.sample_people`)."""
    rng = random.Random(seed_value)
    account_ids = []
    for name, domain in (*COMPANIES, COMPANIES[0]):  # "Acme" twice: duplicate account names
        account_id = state.create_account({"name": name, "domain": domain})
        _backdate(state.accounts[account_id], rng)
        account_ids.append(account_id)
    index: dict[str, int] = {}
    emails: list[str] = []
    for n in range(count):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        account = rng.choice(account_ids) if rng.random() < 0.7 else None
        domain = state.accounts[account]["domain"] if account else "mail.test"
        contact: dict[str, Any] = {"firstname": first, "lastname": last}
        roll = rng.random()
        if roll < 0.08:
            pass  # no email at all
        elif roll < 0.1 and emails:
            contact["email"] = rng.choice(emails)  # a second contact with the same email
        else:
            local = f"{first}.{last}".lower().replace(" ", "").replace("'", "")
            contact["email"] = f"{_ascii(local)}{n}@{domain}"
            emails.append(contact["email"])
        shared = shared_at(seed_value, n)
        if shared is not None:
            # one of the people every sandbox seeded with this seed holds (sample_people)
            contact.update(
                firstname=shared.first_name, lastname=shared.last_name, email=shared.email
            )
        if account:
            contact["account"] = account
        role = rng.choice(ROLES)
        if n % 97 == 5:
            role = LONG.strip()
        if role:
            contact["position"] = {"role": role}
        if rng.random() < 0.6:
            contact["phone_number"] = rng.choice(PHONES).format(n=n % 100)
        if rng.random() < 0.3:
            contact["mobile_phone_number"] = f"+32 470 {n % 100:02d} {rng.randrange(100):02d} 11"
        if rng.random() < 0.5:
            city, region, zip_code, country = rng.choice(CITIES)
            street = f"{rng.randrange(1, 300)} Rue de la Paix" if n % 61 else "Straße " * 30
            contact["address"] = {
                "street": street.strip(),
                "city": city,
                "state_region": region,
                "zip": zip_code,
                "country": country,
                "type": "work",
            }
        contact["tags"] = rng.sample(TAGS, rng.randrange(0, 3))
        custom: dict[str, Any] = {}
        if rng.random() < 0.3:
            custom["source"] = rng.choice(("web", "event", "referral", "cold call"))
        if rng.random() < 0.2:
            custom["lifetime_value"] = rng.randrange(100, 50000)
        if custom:
            contact["custom"] = custom
        values = state.validate_contact(contact, [], creating=True)
        contact_id = state.create_contact(values, force=True, index=index)
        record = state.contacts[contact_id]
        _backdate(record, rng)
        if rng.random() < 0.05:
            record["archived"] = True


def _backdate(record: dict[str, Any], rng: random.Random) -> None:
    created = EPOCH + timedelta(seconds=rng.randrange(0, 60 * 60 * 24 * 700))
    modified = created + timedelta(seconds=rng.randrange(0, 60 * 60 * 24 * 60))
    record["creation_date"] = iso(created)
    record["modification_date"] = iso(modified)


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c for c in folded if c.isalnum() or c == ".").strip(".") or "contact"
