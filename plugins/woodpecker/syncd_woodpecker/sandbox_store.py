"""The emulated Woodpecker account: its prospects, upsert rules and clock.

Kept apart from the HTTP layer so that tests can set up and inspect "the app" directly (add a
blacklisted prospect, move the clock, look at what the connector wrote).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from syncd_woodpecker.fields import SNIPPETS, STATUSES, format_timestamp

#: the fields ``add_prospects_list`` takes [vendors.md §3.2]
WRITABLE_FIELDS = (
    "email",
    "first_name",
    "last_name",
    "company",
    "website",
    "linkedin_url",
    "tags",
    "title",
    "phone",
    "address",
    "city",
    "state",
    "country",
    "industry",
    *SNIPPETS,
)
#: the legacy spellings the docs use for snippet1-4 (``snipet1``...), read as those fields
LEGACY_SNIPPETS = {f"snipet{n}": f"snippet{n}" for n in range(1, 5)}
#: prospect fields Woodpecker sets itself (listed, searchable and sortable, never written)
OWN_FIELDS = ("organization_id",)
SEARCHABLE_FIELDS = frozenset({*WRITABLE_FIELDS, *OWN_FIELDS, *LEGACY_SNIPPETS, "status"})
SORTABLE_FIELDS = frozenset(
    {
        *WRITABLE_FIELDS,
        *OWN_FIELDS,
        *LEGACY_SNIPPETS,
        "id",
        "status",
        "updated",
        "last_contacted",
        "last_replied",
    }
)
ACTIVITIES = ("OPENED", "NOT-OPENED", "CLICKED", "NOT-CLICKED")
INTERESTS = ("INTERESTED", "NOT-INTERESTED", "MAYBE-LATER", "NOT-MARKED")
# Loose on purpose: Woodpecker's own validation is not documented; this refuses what is
# obviously not an address (E_EMAIL) and lets the rest through.
_EMAIL_SHAPE = re.compile(r"^[^@\s,]+@[^@\s,]+\.[^@\s,]+$")
_WHITESPACE = re.compile(r"\s+")


def parse_offset(text: str) -> timezone:
    """``"+0200"`` → a fixed time zone."""
    match = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", text.strip())
    if not match:
        raise ValueError(f"not a UTC offset: {text!r}")
    sign = -1 if match.group(1) == "-" else 1
    return timezone(sign * timedelta(hours=int(match.group(2)), minutes=int(match.group(3))))


@dataclass
class Prospect:
    id: int
    fields: dict[str, str]
    status: str = "ACTIVE"
    updated: datetime = field(default_factory=lambda: datetime.now(UTC))
    last_contacted: datetime | None = None
    last_replied: datetime | None = None
    #: campaign id → this prospect's part in it
    campaigns: dict[int, Enrolment] = field(default_factory=dict)

    @property
    def email(self) -> str:
        return self.fields.get("email", "")

    def value(self, name: str) -> str:
        """A field's text for search and sort, legacy spellings included."""
        if name == "status":
            return self.status
        return self.fields.get(LEGACY_SNIPPETS.get(name, name), "")

    def to_json(self, tz: timezone) -> dict[str, Any]:
        """The prospect as ``GET /rest/v1/prospects`` lists it."""
        body: dict[str, Any] = {"id": self.id}
        for name in WRITABLE_FIELDS:
            body[name] = self.fields.get(name, "")
        body["organization_id"] = self.value("organization_id")
        # responses also carry the legacy ``snipet1``-``snipet4`` spellings [vendors.md §3.3]
        for n in range(1, 5):
            body[f"snipet{n}"] = self.fields.get(f"snippet{n}", "")
        body["status"] = self.status
        body["updated"] = format_timestamp(self.updated.astimezone(tz))
        body["last_contacted"] = (
            format_timestamp(self.last_contacted.astimezone(tz)) if self.last_contacted else ""
        )
        body["last_replied"] = (
            format_timestamp(self.last_replied.astimezone(tz)) if self.last_replied else ""
        )
        body["encrypted"] = False
        return body


@dataclass
class Campaign:
    id: int
    name: str
    status: str = "RUNNING"


@dataclass
class Enrolment:
    """A prospect's part in one campaign."""

    campaign: Campaign
    status: str = "ACTIVE"
    interested: str = "NOT-MARKED"
    opened: bool = False
    clicked: bool = False

    def to_json(self, email: str) -> dict[str, Any]:
        return {
            "campaign_id": self.campaign.id,
            "campaign_name": self.campaign.name,
            "campaign_status": self.campaign.status,
            "campaign_prospect_status": self.status,
            "interested": self.interested,
            "campaign_email": email,
        }


@dataclass
class ItemResult:
    """The outcome of one prospect of an ``add_prospects_list`` request."""

    email: str
    id: int | None = None
    code: str | None = None
    msg: str = ""
    action: str = ""  # added | updated | unchanged

    def to_json(self) -> dict[str, Any]:
        if self.code is not None:
            return {"email": self.email, "status": "ERROR", "code": self.code, "msg": self.msg}
        return {"email": self.email, "id": self.id}


class ProspectStore:
    """One Woodpecker company's global prospect list."""

    def __init__(self, tz: timezone | None = None) -> None:
        self.tz = tz or parse_offset("+0200")
        self.prospects: dict[int, Prospect] = {}
        self._by_email: dict[str, int] = {}
        self._next_id = 1001
        #: seconds added to the real clock (tests move time forward instead of sleeping)
        self.clock_offset = 0.0
        #: the ``update`` flag of every add_prospects_list request, in order (for tests)
        self.add_requests: list[bool] = []
        #: requests refused because another one was in flight
        self.refused_concurrent = 0
        #: tests only: when set, listings wait for this event (and set ``at_gate`` meanwhile),
        #: so a test can hold one request in flight for as long as it needs, without timing
        self.gate: asyncio.Event | None = None
        self.at_gate = asyncio.Event()
        self.campaigns: dict[int, Campaign] = {}
        self._next_campaign = 701
        #: what ``GET /rest/v1/me`` answers
        self.account: dict[str, Any] = {
            "id": 40213,
            "name": "Sandbox User",
            "email": "sandbox.user@example.com",
            "company": "Sandbox Company",
            "company_id": 1873,
            "status": "ACTIVE",
        }

    # --- campaigns (as a user of the app sets them up) -----------------------------------

    def add_campaign(self, name: str, status: str = "RUNNING") -> Campaign:
        campaign = Campaign(self._next_campaign, name, status)
        self._next_campaign += 1
        self.campaigns[campaign.id] = campaign
        return campaign

    def enrol(
        self,
        prospect_id: int,
        campaign_id: int,
        *,
        interested: str = "NOT-MARKED",
        opened: bool = False,
        clicked: bool = False,
        contacted: bool = False,
    ) -> Enrolment:
        """Put a prospect in a campaign; ``contacted`` also records that an email went out."""
        if interested not in INTERESTS:
            raise ValueError(f"interested must be one of {INTERESTS}")
        prospect = self.prospects[prospect_id]
        enrolment = Enrolment(self.campaigns[campaign_id], interested=interested)
        enrolment.opened, enrolment.clicked = opened or clicked, clicked
        prospect.campaigns[campaign_id] = enrolment
        if contacted or opened or clicked:
            prospect.last_contacted = prospect.last_contacted or self.now()
        return enrolment

    # --- clock ----------------------------------------------------------------------------

    def now(self) -> datetime:
        moment = datetime.now(UTC) + timedelta(seconds=self.clock_offset)
        return moment.astimezone(self.tz).replace(microsecond=0)

    def advance(self, seconds: float) -> None:
        self.clock_offset += seconds

    # --- reading --------------------------------------------------------------------------

    def by_email(self, email: str) -> Prospect | None:
        prospect_id = self._by_email.get(email.strip().lower())
        return self.prospects.get(prospect_id) if prospect_id is not None else None

    def ordered(self) -> list[Prospect]:
        return [self.prospects[i] for i in sorted(self.prospects)]

    # --- writing (as a user of the app would, not through the API) ----------------------

    def add(
        self,
        status: str = "ACTIVE",
        updated: datetime | None = None,
        last_contacted: datetime | None = None,
        **values: str,
    ) -> Prospect:
        """Put a prospect in the list directly (seeding, tests)."""
        email = values.get("email", "")
        if not email or self.by_email(email) is not None:
            raise ValueError(f"a prospect needs a unique email, got {email!r}")
        prospect = Prospect(
            self._next_id,
            {k: _clean(v) for k, v in values.items() if k in (*WRITABLE_FIELDS, *OWN_FIELDS)},
            status=status,
            updated=updated or self.now(),
            last_contacted=last_contacted,
        )
        self._next_id += 1
        self.prospects[prospect.id] = prospect
        self._by_email[email.strip().lower()] = prospect.id
        return prospect

    def edit(self, prospect_id: int, **values: str) -> Prospect:
        """Change a prospect as a Woodpecker user would (bumps ``updated``)."""
        prospect = self.prospects[prospect_id]
        if "status" in values:
            prospect.status = values.pop("status")
        if "email" in values:
            del self._by_email[prospect.email.lower()]
            self._by_email[values["email"].strip().lower()] = prospect_id
        prospect.fields.update({k: _clean(v) for k, v in values.items()})
        prospect.updated = self.now()
        return prospect

    def delete(self, ids: Iterable[int]) -> int:
        deleted = 0
        for prospect_id in ids:
            prospect = self.prospects.pop(prospect_id, None)
            if prospect is not None:
                self._by_email.pop(prospect.email.lower(), None)
                deleted += 1
        return deleted

    # --- add_prospects_list ---------------------------------------------------------------

    def validate(self, item: Any, seen: set[str]) -> ItemResult | None:
        """The error for one submitted prospect, or ``None`` when it is acceptable."""
        if not isinstance(item, dict):
            return ItemResult("", code="E_WRONG_PARAM", msg="a prospect must be an object")
        email = item.get("email")
        if not isinstance(email, str) or not email.strip():
            return ItemResult("", code="E_REQUIRED_ELEMENT", msg="email is required")
        if not _EMAIL_SHAPE.match(email.strip()):
            return ItemResult(email, code="E_EMAIL", msg="invalid email address")
        if email.strip().lower() in seen:
            return ItemResult(email, code="E_DUPLICATE", msg="email repeated in this request")
        status = item.get("status")
        if status is not None and status not in STATUSES:
            return ItemResult(email, code="E_WRONG_PARAM", msg=f"unknown status {status!r}")
        for key, value in item.items():
            if key in WRITABLE_FIELDS and not isinstance(value, str | int | float | None):
                return ItemResult(email, code="E_WRONG_PARAM", msg=f"{key} must be text")
        return None

    def upsert(self, item: Mapping[str, Any], update: bool) -> ItemResult:
        """Add one (validated) prospect, or update the one with its email when ``update``.

        Without ``update`` an existing prospect is silently left unchanged and its id returned,
        as Woodpecker does [vendors.md §3.2, §3.6]. Omitted fields are not touched; an empty
        string clears a field (how Woodpecker treats ``""`` is not documented: this is the most
        likely reading). Unknown keys are ignored.
        """
        email = str(item["email"]).strip()
        values = {k: _clean(v) for k, v in item.items() if k in WRITABLE_FIELDS and k != "email"}
        if "tags" in values:
            values["tags"] = normalise_tag_string(values["tags"])
        existing = self.by_email(email)
        if existing is None:
            fields = {k: v for k, v in values.items() if v}
            fields["email"] = email
            created = self.add(str(item.get("status") or "ACTIVE"), None, None, **fields)
            return ItemResult(email, created.id, action="added")
        if not update:
            return ItemResult(email, existing.id, action="unchanged")
        changed = False
        for key, value in values.items():
            if existing.fields.get(key, "") != value:
                existing.fields[key] = value
                changed = True
        status = item.get("status")
        if status is not None and status != existing.status:
            existing.status = str(status)
            changed = True
        if changed:
            existing.updated = self.now()
        return ItemResult(email, existing.id, action="updated" if changed else "unchanged")


def _clean(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return text.strip()


def normalise_tag_string(value: str) -> str:
    """How the sandbox stores ``tags``: runs of white space folded (the rest kept as sent)."""
    return _WHITESPACE.sub(" ", value).strip()
