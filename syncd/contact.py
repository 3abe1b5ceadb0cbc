"""The canonical contact: the vocabulary every connector maps its own fields to.

A value is a string, a frozenset of strings (``tags``) or ``None`` (empty). Values are normalised
before they are compared or hashed, so that an app that trims, re-cases or reformats what it stores
does not look like an edit (design.md rule 2).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

FieldValue = str | frozenset[str] | None

CANONICAL_FIELDS: tuple[str, ...] = (
    "email",
    "first_name",
    "last_name",
    "name",
    "company",
    "title",
    "phone",
    "mobile",
    "website",
    "street",
    "city",
    "region",
    "postal_code",
    "country",
    "tags",
    "notes",
)
CUSTOM_PREFIX = "custom."

EMAIL_FIELDS = frozenset({"email"})
PHONE_FIELDS = frozenset({"phone", "mobile"})
TAG_FIELDS = frozenset({"tags"})

_WHITESPACE = re.compile(r"\s+")
# Deliberately loose: the apps validate addresses themselves; this only keeps obvious garbage
# (a name typed into the email column) out of matching.
_EMAIL_SHAPE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def is_canonical(name: str) -> bool:
    """Whether ``name`` is a canonical field or a ``custom.<key>`` field."""
    return name in CANONICAL_FIELDS or (name.startswith(CUSTOM_PREFIX) and len(name) > 7)


def field_kind(name: str) -> str:
    """How values of a canonical field are normalised: email, phone, tags or text."""
    if name in EMAIL_FIELDS:
        return "email"
    if name in PHONE_FIELDS:
        return "phone"
    if name in TAG_FIELDS:
        return "tags"
    return "text"


def normalise_email(value: str | None) -> str | None:
    """Emails are compared trimmed and lower-cased; an empty one is ``None``."""
    if value is None:
        return None
    cleaned = value.strip().lower()
    return cleaned or None


def is_valid_email(value: str) -> bool:
    return bool(_EMAIL_SHAPE.match(value))


def normalise_text(value: str | None) -> str | None:
    """NFC, trimmed, inner runs of white space folded to one space; empty is ``None``."""
    if value is None:
        return None
    if value.isascii() and value.isprintable() and "  " not in value:
        # the common case, already in normal form: only the ends may need trimming
        return value.strip() or None
    cleaned = _WHITESPACE.sub(" ", unicodedata.normalize("NFC", value)).strip()
    return cleaned or None


_PHONE_PUNCTUATION = re.compile(r"[\s\-./]")
_E164 = re.compile(r"^\+[1-9]\d{7,14}$")


@lru_cache(maxsize=65536)
def normalise_phone(value: str, region: str) -> str:
    """E.164 when the number parses (with ``region`` for national numbers), else the trimmed text.

    An unparseable number is kept as typed rather than dropped: losing data is worse than a
    missed match.
    """
    text = normalise_text(value) or ""
    compact = _PHONE_PUNCTUATION.sub("", text)
    if _E164.match(compact):
        # already international: parsing would only give the same digits back, slowly
        return compact
    import phonenumbers  # here: a daemon whose numbers are all E.164 never needs it (~1 MB)

    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return text
    if not phonenumbers.is_possible_number(parsed):
        return text
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalise_tags(value: Iterable[str] | str | None) -> frozenset[str] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    tags = frozenset(t for t in (normalise_text(item) for item in items) if t)
    return tags or None


def normalise(kind: str, value: object, phone_region: str = "GB") -> FieldValue:
    """Normalise one value of the given kind; anything that is not text is turned into text."""
    if value is None:
        return None
    if kind == "tags":
        if isinstance(value, str | frozenset | set | list | tuple):
            return normalise_tags(value)
        return normalise_tags(str(value))
    text = value if isinstance(value, str) else str(value)
    if kind == "email":
        return normalise_email(text)
    if kind == "phone":
        cleaned = normalise_text(text)
        return normalise_phone(cleaned, phone_region) if cleaned else None
    return normalise_text(text)


def loosely_equal(left: FieldValue, right: FieldValue) -> bool:
    """Whether two normalised values say the same thing up to letter case.

    Used to decide whether a write is needed at all: an app that re-cases names must not cause a
    write back and forth. The cost is that an edit changing only letter case does not travel.
    """
    if left == right:
        return True
    if isinstance(left, str) and isinstance(right, str):
        return left.casefold() == right.casefold()
    if isinstance(left, frozenset) and isinstance(right, frozenset):
        return {t.casefold() for t in left} == {t.casefold() for t in right}
    return False


def display(value: FieldValue) -> str:
    """A value as a person reads it (tags sorted and joined with ``;``)."""
    if value is None:
        return ""
    if isinstance(value, frozenset):
        return ";".join(sorted(value))
    return value
