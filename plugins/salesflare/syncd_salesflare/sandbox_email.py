"""Email validation as Salesflare's Hapi server does it: Joi's ``string().email()``.

Joi checks addresses with ``@sideway/address`` (``lib/email.js``, ``lib/domain.js``); this is that
algorithm, rule for rule, with Joi's default options (``allowUnicode: true``, ``ignoreLength:
false``, ``minDomainSegments: 2``, no fully qualified trailing dot):

* exactly one ``@``, a non-empty local part of at most 64 bytes (UTF-8), 254 characters in all;
* the local part is dot-separated atoms, none empty, of RFC 5322 ``atext`` characters
  (letters, digits and ``!#$%&'*+-/=?^_`{|}~``) or any non-ASCII character;
* the domain (NFC-normalised, then punycoded) has no control, space or ``@:/\\#!$&'()*+,;=?``
  characters, at most 256 characters, at least two labels of 1-63 characters; labels are letters,
  digits and inner hyphens, and the last one (the TLD) starts with a letter.

One difference is known: Joi's default also refuses a TLD missing from IANA's list; that list is
not shipped here, so any TLD of the right shape is accepted (the README's Fidelity table says so).
"""

from __future__ import annotations

import re
import unicodedata

_ATEXT = re.compile(r"^[\w!#$%&'*+\-/=?^`{|}~]+$", re.ASCII)
_DOMAIN_CONTROL = re.compile(r"[\x00-\x20@:/\\#!$&'()*+,;=?]")
_SEGMENT = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?$")
_TLD = re.compile(r"^[a-zA-Z](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?$")


def email_problem(email: str) -> str | None:
    """Why Joi refuses ``email`` (an @sideway/address error code), or ``None`` when it passes."""
    if not email:
        return "EMPTY_STRING"
    ascii_only = email.isascii()
    if not ascii_only:
        email = unicodedata.normalize("NFC", email)
    parts = email.split("@")
    if len(parts) != 2:
        return "MULTIPLE_AT_CHAR" if len(parts) > 2 else "MISSING_AT_CHAR"
    local, domain = parts
    if not local:
        return "EMPTY_LOCAL"
    if len(email) > 254:
        return "ADDRESS_TOO_LONG"
    if len(local.encode("utf-8")) > 64:
        return "LOCAL_TOO_LONG"
    for segment in local.split("."):
        if not segment:
            return "EMPTY_LOCAL_SEGMENT"
        for char in segment:
            if char.isascii() and not _ATEXT.match(char):
                return "INVALID_LOCAL_CHARS"
    return domain_problem(domain)


def domain_problem(domain: str) -> str | None:
    if not domain:
        return "DOMAIN_NON_EMPTY_STRING"
    if len(domain) > 256:
        return "DOMAIN_TOO_LONG"
    if not domain.isascii():
        domain = unicodedata.normalize("NFC", domain)
    if _DOMAIN_CONTROL.search(domain):
        return "DOMAIN_INVALID_CHARS"
    if not domain.isascii():
        try:
            domain = ".".join(_punycode(label) for label in domain.split("."))
        except UnicodeError:
            return "DOMAIN_INVALID_UNICODE_CHARS"
    segments = domain.split(".")
    if len(segments) < 2:
        return "DOMAIN_SEGMENTS_COUNT"
    for index, segment in enumerate(segments):
        if not segment:
            return "DOMAIN_EMPTY_SEGMENT"
        if len(segment) > 63:
            return "DOMAIN_LONG_SEGMENT"
        last = index == len(segments) - 1
        if not (_TLD if last else _SEGMENT).match(segment):
            return "DOMAIN_INVALID_TLDS_CHARS" if last else "DOMAIN_INVALID_CHARS"
    return None


def _punycode(label: str) -> str:
    """One label as WHATWG's ``domainToASCII`` (which the JS code uses) writes it."""
    if label.isascii():
        return label
    return "xn--" + label.lower().encode("punycode").decode("ascii")
