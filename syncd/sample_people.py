"""People that every vendor sandbox seeded with the same seed has in common.

A business that uses two apps has many of the same people in both. So that ``syncd sandbox xero
--seed 1`` and ``syncd sandbox salesflare --seed 1`` (or any two sandboxes started with one seed)
show a merge, each sandbox's seed gives every :data:`SHARE`-th of its contacts the name and email
of a shared person: person ``n`` of seed ``s`` is the same whichever vendor asks. Everything else
about the contact (phones, addresses, tags, and so the conflicts a merge settles) stays the
vendor's own.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass

#: one contact in every SHARE of a seeded sandbox is a shared person (the first, the fourth, ...)
SHARE = 3

FIRST_NAMES = (
    "Amara", "Bastien", "Camille", "Dagny", "Eamon", "Freya", "Gustavo", "Hiroshi", "Isabela",
    "Jonas", "Kalani", "Leilani", "Matteo", "Nadia", "Orla", "Pavel", "Rosa", "Sanjay", "Thea",
    "Ulrich", "Vera", "Wiebke", "Ximena", "Yusuf", "Zofia", "Åsa", "Élise", "Ñuño", "Ørjan", "Şule",
)  # fmt: skip
LAST_NAMES = (
    "Abbott", "Bianchi", "Castillo", "Dąbrowski", "Eriksen", "Fitzgerald", "Gonçalves", "Hoffmann",
    "Ivanov", "Jansen", "Kaur", "Lindgren", "Moreau", "Nakamoto", "O'Connell", "Papadopoulos",
    "Quinn", "Rahman", "Sørensen", "Tanaka", "Urquhart", "Vasquez", "Wójcik", "Yilmaz", "Zhou",
)  # fmt: skip
DOMAINS = (
    "northwind", "contoso", "fabrikam", "tailspin", "wingtip", "adventureworks", "litware",
    "proseware", "lucerne", "margie",
)  # fmt: skip


@dataclass(frozen=True)
class SharedPerson:
    first_name: str
    last_name: str
    #: plain ASCII, valid for every vendor's validation, unique per (seed, index)
    email: str
    #: the domain's organisation, for sandboxes whose contacts have one
    company: str


def shared_person(seed: int, index: int) -> SharedPerson:
    """Person ``index`` of the people every sandbox seeded with ``seed`` holds."""
    rng = random.Random(f"syncd-shared-people:{seed}:{index}")
    first, last, domain = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES), rng.choice(DOMAINS)
    local = f"{_ascii(first)}.{_ascii(last)}".strip(".") or "person"
    return SharedPerson(first, last, f"{local}{index}@{domain}.example", domain.title())


def shared_at(seed: int | None, position: int) -> SharedPerson | None:
    """The shared person a sandbox's contact number ``position`` (from 0) is, if it is one."""
    if seed is None or position % SHARE:
        return None
    return shared_person(seed, position // SHARE)


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return "".join(c for c in folded if c.isalnum())
