"""Realistic sample prospects for the sandbox, reproducible from a seed.

Woodpecker refuses a prospect without an email, so unlike other apps' samples every prospect has
one; the awkward cases are elsewhere: names shared by several people, unicode, very long values,
mixed-case addresses, blacklisted/bounced/invalid statuses, legacy tag strings, empty fields.
"""

from __future__ import annotations

import random
import unicodedata
from datetime import timedelta

from syncd.sample_people import shared_at
from syncd_woodpecker.sandbox_store import Enrolment, ProspectStore

FIRST_NAMES = (
    "Anna", "Piotr", "Zoë", "José", "Łukasz", "Søren", "Chloé", "Mateusz", "Aoife", "Björn",
    "Małgorzata", "François", "Nguyễn", "Olivia", "James", "Priya", "Sven", "Élodie", "Kasia",
    "Tomasz", "Wei", "Fatima", "Jürgen", "Núria", "Oğuz",
)  # fmt: skip
LAST_NAMES = (
    "Kowalski", "Nowak", "Smith", "García", "Müller", "Wiśniewska", "O'Brien", "Dąbrowski",
    "Jensen", "Lefèvre", "Brown", "Zieliński", "Rossi", "Novák", "van der Berg", "Öztürk",
    "Ng", "Szymańska", "Murphy", "Lewandowski",
)  # fmt: skip
COMPANIES = (
    "Acme Sp. z o.o.", "Globex", "Initech", "Umbrella GmbH", "Stark Industries", "Wayne & Co",
    "Hooli", "Żabka Polska", "Café Crème SARL", "Nordisk Træ A/S", "Soylent", "Vandelay Imports",
)  # fmt: skip
TITLES = ("CEO", "CTO", "Head of Sales", "Marketing Manager", "Founder", "VP Engineering", "")
INDUSTRIES = ("Software", "Retail", "Manufacturing", "Consulting", "Finance", "")
CITIES = (
    ("Kraków", "Małopolskie", "Poland"),
    ("Warszawa", "Mazowieckie", "Poland"),
    ("London", "", "United Kingdom"),
    ("München", "Bayern", "Germany"),
    ("Austin", "TX", "United States"),
    ("Lyon", "Auvergne-Rhône-Alpes", "France"),
    ("", "", ""),
)
TAGS = ("#VC", "#NEW", "#SAAS", "#EVENT2025", "#SECONDARYEMAIL", "#PARTNER", "#COLD")
DOMAINS = ("example.com", "example.org", "mail.example.net", "example.co.uk")
#: Statuses with rough weights: most prospects are active; some must never be reactivated.
STATUS_WEIGHTS = (
    ("ACTIVE", 70),
    ("REPLIED", 8),
    ("AUTOREPLIED", 3),
    ("TO-CHECK", 2),
    ("TO-REVIEW", 2),
    ("BLACKLIST", 6),
    ("BOUNCED", 6),
    ("INVALID", 3),
)


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


def seed_prospects(store: ProspectStore, seed: int, count: int = 300) -> None:
    """Fill ``store`` with ``count`` prospects drawn from ``seed``; every third is one of the
    people every sandbox seeded with ``seed`` holds (:mod:`syncd.sample_people`)."""
    rng = random.Random(seed)
    statuses = [s for s, _ in STATUS_WEIGHTS]
    weights = [w for _, w in STATUS_WEIGHTS]
    now = store.now()
    for index in range(count):
        first = rng.choice(FIRST_NAMES)
        last = rng.choice(LAST_NAMES)
        local = f"{_ascii(first)}.{_ascii(last)}{index}"
        if index % 17 == 0:
            local = f"{local}+news"
        email = f"{local}@{rng.choice(DOMAINS)}"
        if index % 11 == 0:
            email = email.capitalize()  # addresses are not always typed in lower case
        shared = shared_at(seed, index)
        if shared is not None:
            # one of the people every sandbox seeded with this seed holds (sample_people)
            first, last, email = shared.first_name, shared.last_name, shared.email
        city, state, country = rng.choice(CITIES)
        company = rng.choice(COMPANIES)
        if index % 41 == 0:
            company = (company + " — International Holdings and Subsidiaries ") * 6
        values = {
            "email": email,
            "first_name": first if index % 23 else "",
            "last_name": last,
            "company": company,
            "title": rng.choice(TITLES),
            "industry": rng.choice(INDUSTRIES),
            "website": f"https://www.{_ascii(company)[:20] or 'example'}.example",
            "phone": f"+48 12 {rng.randint(100, 999)} {rng.randint(10, 99)} {rng.randint(10, 99)}"
            if index % 3
            else "",
            "city": city,
            "state": state,
            "country": country,
            "address": f"ul. Długa {rng.randint(1, 200)}" if country == "Poland" else "",
            "linkedin_url": f"https://www.linkedin.com/in/{local}" if index % 4 == 0 else "",
            "tags": " ".join(rng.sample(TAGS, rng.randint(0, 3))),
            "snippet1": f"Met at {rng.choice(('SaaStr', 'Web Summit', 'a webinar'))}",
            "snippet2": "Lorem ipsum dolor sit amet. " * 40 if index % 29 == 0 else "",
        }
        status = rng.choices(statuses, weights)[0]
        updated = now - timedelta(days=rng.randint(1, 365), seconds=rng.randint(0, 86_399))
        store.add(
            status=status,
            updated=updated,
            last_contacted=updated if status != "ACTIVE" else None,
            **{k: v for k, v in values.items() if v},
        )


CAMPAIGNS = ("Spring outreach", "Webinar follow-up", "Reactivation")


def seed_campaigns(store: ProspectStore, seed: int) -> None:
    """A few campaigns holding about half the prospects (drawn from their own generator, and
    without touching any prospect's fields, so the prospects of a seed stay what they were).
    Prospects already contacted (replied, bounced, ...) have opens, clicks and interest marks;
    active ones are waiting for their first email."""
    rng = random.Random(f"campaigns:{seed}")
    campaigns = [store.add_campaign(name) for name in CAMPAIGNS]
    marks = ("NOT-MARKED", "INTERESTED", "MAYBE-LATER", "NOT-INTERESTED")
    for prospect in store.ordered():
        if rng.random() < 0.5:
            continue
        campaign = rng.choice(campaigns)
        enrolment = Enrolment(campaign)
        if prospect.last_contacted is not None:
            enrolment.opened = rng.random() < 0.6
            enrolment.clicked = enrolment.opened and rng.random() < 0.3
            enrolment.interested = rng.choice(marks)
        prospect.campaigns[campaign.id] = enrolment
