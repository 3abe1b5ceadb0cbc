"""Woodpecker prospect fields: how they map to canonical contacts and how values are converted.

Pure functions only (no I/O), shared by the connector and, for the timestamp format, the sandbox.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from syncd.connector import FieldSpec, RawValue

SNIPPETS = tuple(f"snippet{n}" for n in range(1, 16))

#: Global prospect statuses [vendors.md §3.3, secondary].
STATUSES = (
    "ACTIVE",
    "BLACKLIST",
    "AUTOREPLIED",
    "TO-CHECK",
    "TO-REVIEW",
    "BOUNCED",
    "INVALID",
    "REPLIED",
)
#: Statuses a sync must never turn back into ACTIVE (unsubscribed, undeliverable addresses).
PROTECTED_STATUSES = frozenset({"BLACKLIST", "BOUNCED", "INVALID"})

FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("email", "email"),
    FieldSpec("first_name", "first_name"),
    FieldSpec("last_name", "last_name"),
    FieldSpec("company", "company"),
    FieldSpec("title", "title"),
    FieldSpec("phone", "phone"),
    FieldSpec("website", "website"),
    FieldSpec("address", "street"),
    FieldSpec("city", "city"),
    FieldSpec("state", "region"),
    FieldSpec("country", "country"),
    FieldSpec("tags", "tags"),
    FieldSpec("linkedin_url", "custom.linkedin_url"),
    FieldSpec("industry", "custom.industry"),
    *(FieldSpec(name, f"custom.{name}") for name in SNIPPETS),
    # Not mapped by default, so a sync never writes it and never reactivates a blacklisted,
    # bounced or invalid prospect; a custom [[fields]] mapping may opt in.
    FieldSpec("status", None),
    FieldSpec("last_contacted", None, read_only=True),
    FieldSpec("last_replied", None, read_only=True),
)

WRITABLE = frozenset(spec.name for spec in FIELDS if not spec.read_only)
TEXT_FIELDS = tuple(
    spec.name for spec in FIELDS if spec.name not in ("tags", "last_contacted", "last_replied")
)

# The docs and responses carry legacy spellings next to the current names [vendors.md §3.3, §3.6]:
# ``snipet1``-``snipet4``, ``snipper9`` and ``"last replied"`` with a space. Read either.
_LEGACY_NAMES: dict[str, tuple[str, ...]] = {
    **{f"snippet{n}": (f"snipet{n}",) for n in range(1, 5)},
    "snippet9": ("snipper9",),
    "last_replied": ("last replied",),
}

_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
_WHITESPACE = re.compile(r"\s+")


def parse_updated(value: Any) -> datetime | None:
    """Woodpecker's ``updated`` (``2016-09-03T15:02:57+0200``: offset without a colon)."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        # the fast path (strptime costs ten times as much); where both read a text they agree,
        # and what only strptime reads (single-digit fields) falls through to it
        parsed = datetime.fromisoformat(text)
    except ValueError:
        pass
    else:
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    for candidate in (text, text.replace("Z", "+0000")):
        try:
            return datetime.strptime(candidate, _TIMESTAMP_FORMAT)
        except ValueError:
            pass
    try:
        # a ``+02:00`` offset or a naive time, should the API ever change its format
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_timestamp(moment: datetime) -> str:
    """A time in Woodpecker's own format (``YYYY-MM-DDTHH:mm:ss+HHMM``)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.strftime(_TIMESTAMP_FORMAT)


def cursor_for(watermark: datetime) -> str:
    """The ``diff=updated>…`` date for a watermark.

    ``updated`` has one-second resolution and the filter is strict, so the cursor goes one second
    back: a prospect changed in the watermark's own second is listed again rather than missed
    (the engine's hash comparison makes the repeat harmless).
    """
    if watermark.tzinfo is None:
        watermark = watermark.replace(tzinfo=UTC)
    moment = watermark.astimezone(UTC).replace(microsecond=0) - timedelta(seconds=1)
    return format_timestamp(moment)


def parse_tags(value: Any) -> tuple[str, ...] | None:
    """``"#VC #NEW"`` → ``("VC", "NEW")``: tags are one space-separated string of ``#words``."""
    if value.__class__ is str:
        return _parse_tag_text(value)
    if isinstance(value, list | tuple):
        value = " ".join(str(v) for v in value)
    if not isinstance(value, str):
        return None
    return _parse_tag_text(value)


@functools.lru_cache(maxsize=4096)
def _parse_tag_text(value: str) -> tuple[str, ...] | None:
    # cached: a list's prospects share a few combinations of tags (the result is immutable)
    tags = []
    for word in value.split():
        tag = word.lstrip("#").strip()
        if tag and tag not in tags:
            tags.append(tag)
    return tuple(tags) or None


def format_tags(value: RawValue) -> str:
    """Canonical tags → ``"#NEW #VC"`` (sorted, so the same set always gives the same string).

    A space would split a tag in two, so spaces inside a tag become ``_``.
    """
    if value is None:
        return ""
    items: Iterable[str] = [value] if isinstance(value, str) else value
    tags = {_WHITESPACE.sub("_", item.strip().lstrip("#")) for item in items}
    return " ".join(f"#{tag}" for tag in sorted(t for t in tags if t))


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    text = value if isinstance(value, str) else str(value)
    return text if text.strip() else None


_TEXT_FIELDS_AND_LEGACY = tuple((name, _LEGACY_NAMES.get(name, ())) for name in TEXT_FIELDS)


def prospect_data(prospect: Mapping[str, Any]) -> dict[str, RawValue]:
    """A prospect object as listed by the API → ``RemoteRecord.data`` (every field present).

    Called once per listed prospect, so a field holding text costs one lookup and one test.
    (Measured against C-level passes over the field table, ``map``/``zip``/``compress``: those
    cost more, at about 50 ns a field each, than this loop does.)"""
    data: dict[str, RawValue] = {}
    get = prospect.get
    for name, legacy_names in _TEXT_FIELDS_AND_LEGACY:
        value = get(name)
        if value.__class__ is str:
            if value and not value.isspace():
                data[name] = value
                continue
        elif value is not None:
            text = _text(value)
            if text is not None:
                data[name] = text
                continue
        text = None  # empty: a legacy spelling may hold it (the API sends them empty too)
        for legacy in legacy_names:
            old = get(legacy)
            if old.__class__ is str:
                if old and not old.isspace():
                    text = old
                    break
            elif old is not None:
                text = _text(old)
                if text is not None:
                    break
        data[name] = text
    data["tags"] = parse_tags(get("tags"))
    contacted = get("last_contacted")
    if contacted.__class__ is str:
        data["last_contacted"] = contacted if contacted and not contacted.isspace() else None
    else:
        data["last_contacted"] = None if contacted is None else _text(contacted)
    replied = get("last_replied")
    if replied is None:
        replied = get("last replied")  # the legacy spelling [vendors.md §3.6]
    if replied.__class__ is str:
        data["last_replied"] = replied if replied and not replied.isspace() else None
    else:
        data["last_replied"] = None if replied is None else _text(replied)
    return data


def payload_value(name: str, value: RawValue) -> str:
    """One field of a write → the JSON value sent to ``add_prospects_list``.

    ``None`` clears a field: an omitted field would be left untouched [vendors.md §3.2], so a
    clear is sent as an empty string.
    """
    if name == "tags":
        return format_tags(value)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return " ".join(sorted(value))
