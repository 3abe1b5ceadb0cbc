"""vCard 3.0/4.0 ⇄ the connector's fields, through ``vobject``, keeping what syncd does not map.

Reading parses a card's content lines with ``vobject``'s parser and picks the mapped properties
(see ``FIELDS``); building ``vobject``'s whole component tree would cost eight times as much.
``vobject`` is imported when the first card is read (a run that lists nothing new never pays
for it). Writing never re-serialises a whole card: the card is split into its content lines
(folded lines kept as they are), and only the lines of the properties being changed are
replaced, added or removed, so that PHOTO, the other EMAIL and TEL entries, X- properties and
properties syncd has never heard of survive byte for byte.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

RawValue = str | tuple[str, ...] | frozenset[str] | list[str] | None

#: the connector's fields, by the canonical field each maps to by default
FIELDS: tuple[tuple[str, str], ...] = (
    ("email", "email"),
    ("fn", "name"),
    ("given", "first_name"),
    ("family", "last_name"),
    ("org", "company"),
    ("title", "title"),
    ("tel", "phone"),
    ("cell", "mobile"),
    ("url", "website"),
    ("adr_street", "street"),
    ("adr_city", "city"),
    ("adr_region", "region"),
    ("adr_postal_code", "postal_code"),
    ("adr_country", "country"),
    ("categories", "tags"),
    ("note", "notes"),
)
ADR_FIELDS = ("adr_street", "adr_city", "adr_region", "adr_postal_code", "adr_country")
#: ADR components (RFC 6350 6.3.1): box; extended; street; locality; region; code; country
ADR_INDEX = {
    "adr_street": 2,
    "adr_city": 3,
    "adr_region": 4,
    "adr_postal_code": 5,
    "adr_country": 6,
}
CUSTOM = "custom."
_LINE_END = re.compile(r"(?<=\n)")
_HEAD_END = re.compile(r"[;:]")
_FOLD = re.compile(r"\r?\n[ \t]")
_ESCAPED = re.compile(r"\\(.)")


class VCardError(ValueError):
    """A card that cannot be read; the message says why, in one line."""


# --- content lines ------------------------------------------------------------------------


@dataclass(slots=True)
class Line:
    """One content line: its raw text as stored (folds and line ending included)."""

    raw: str
    name: str  # upper-case, without a group
    group: str | None

    @property
    def unfolded(self) -> str:
        text = self.raw.rstrip("\r\n")
        return _FOLD.sub("", text) if "\n" in text else text


def split_lines(text: str) -> list[Line]:
    """The content lines of a card, each with its raw text (continuation lines joined)."""
    physical = [p for p in _LINE_END.split(text) if p]
    lines: list[Line] = []
    for part in physical:
        if part[:1] in (" ", "\t") and lines:
            lines[-1].raw += part
            continue
        if not part.strip():
            if lines:
                lines[-1].raw += part  # a blank line stays where it was
            continue
        head = _HEAD_END.split(part, maxsplit=1)[0].strip()
        group, dot, name = head.rpartition(".")
        lines.append(Line(part, name.upper(), group if dot else None))
    return lines


def newline_of(text: str) -> str:
    return "\r\n" if "\r\n" in text or "\n" not in text else "\n"


# --- escaping and folding -----------------------------------------------------------------


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_URL_BREAKS = re.compile(r"[\x00-\x1f\x7f]")
#: what :func:`escape` changes (most values hold none of it, and are returned as they are)
_NEEDS_ESCAPING = re.compile(r"[\x00-\x08\n\x0b-\x1f\x7f\\,;]")


def _url(value: str) -> str:
    """A URL as a content line holds it: not escaped, without line breaks or control
    characters (which would end the line)."""
    return _URL_BREAKS.sub("", value)


def escape(value: str) -> str:
    """A text value as a vCard holds it: \\ , ; escaped, line breaks as \\n, and the control
    characters a content line cannot hold left out."""
    if _NEEDS_ESCAPING.search(value) is None:
        return value
    value = _CONTROL.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))
    return value.replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;").replace("\n", "\\n")


def fold(line: str, newline: str) -> str:
    """Fold a content line at 75 octets (RFC 6350 3.2), never inside a UTF-8 sequence."""
    encoded = line.encode()
    if len(encoded) <= 75:
        return line + newline
    parts: list[str] = []
    start, limit = 0, 75
    while start < len(encoded):
        end = min(start + limit, len(encoded))
        while end < len(encoded) and (encoded[end] & 0xC0) == 0x80:
            end -= 1
        parts.append(encoded[start:end].decode())
        start, limit = end, 74
    return (newline + " ").join(parts) + newline


# --- reading ------------------------------------------------------------------------------


@dataclass(slots=True)
class Parsed:
    """A parsed card: the mapped fields and which line each multi-valued one came from."""

    data: dict[str, RawValue]
    uid: str | None
    #: the index, among the lines of that property name, of the line each field was read from
    picks: dict[str, int]


@dataclass(slots=True)
class Prop:
    """One parsed content line: parameters by upper-case name, the raw (escaped) value."""

    params: dict[str, list[str]]
    value: str


def _types(line: Prop) -> set[str]:
    found: set[str] = set()
    for value in line.params.get("TYPE", []):
        found.update(v.strip().lower() for v in str(value).split(",") if v.strip())
    return found


def _pref(line: Prop) -> int:
    """The preference of a line: 4.0's PREF=1..100 (1 most preferred) or 3.0's TYPE=pref."""
    values = line.params.get("PREF")
    if values:
        try:
            return int(str(values[0]))
        except ValueError:
            return 100
    return 1 if "pref" in _types(line) else 101


def _text(value: str | None) -> str | None:
    text = _unescape(value).strip() if value is not None else ""
    return text or None


def _tel_value(line: Prop) -> str | None:
    return _tel_text(_text(line.value))


def _tel_text(text: str | None) -> str | None:
    if text and text.lower().startswith("tel:"):
        text = text[4:]
    return text


def pick_email(lines: Sequence[Prop]) -> int | None:
    if not lines:
        return None
    return min(range(len(lines)), key=lambda i: (_pref(lines[i]), i))


def pick_tel(lines: Sequence[Prop], kind: str) -> int | None:
    """``cell``: the first cell TEL; ``tel``: the first work or voice TEL that is not a cell
    (preferred ones first)."""
    candidates = []
    for i, line in enumerate(lines):
        types = _types(line)
        if (kind == "cell" and "cell" in types) or (
            kind == "tel" and "cell" not in types and (types & {"work", "voice"} or not types)
        ):
            candidates.append(i)
    if not candidates:
        return None
    return min(candidates, key=lambda i: (_pref(lines[i]), i))


def pick_adr(lines: Sequence[Prop]) -> int | None:
    for wanted in ("work", "home"):
        for i, line in enumerate(lines):
            if wanted in _types(line):
                return i
    return 0 if lines else None


def _properties(text: str) -> dict[str, list[Prop]]:
    """The content lines of one VCARD, parsed by ``vobject``'s content-line parser, by
    upper-case name; :class:`VCardError` when the text is not one vCard."""
    lines = split_lines(text)
    if not lines:
        raise VCardError("empty")
    first = lines[0].unfolded.strip().upper()
    if not first.startswith("BEGIN:"):
        raise VCardError("does not start with BEGIN:VCARD")
    if first != "BEGIN:VCARD":
        raise VCardError(f"a {first[6:]} component, not a VCARD")
    if lines[-1].unfolded.strip().upper() != "END:VCARD":
        raise VCardError("no END:VCARD at the end")
    props: dict[str, list[Prop]] = {}
    depth = 0
    parse_line = _vobject_parse_line()
    for line in lines[1:-1]:
        try:
            name, params, value, _group = parse_line(line.unfolded)
        except Exception as exc:  # vobject's ParseError, and whatever a broken line raises
            raise VCardError(_one_line(exc) or type(exc).__name__) from None
        name = name.upper()
        if name == "BEGIN":
            depth += 1  # an embedded component (a 2.1 AGENT): not this card's properties
            continue
        if name == "END":
            depth -= 1
            continue
        if depth:
            continue
        by_name: dict[str, list[str]] = {}
        for param in params:
            if len(param) == 1:  # a bare 2.1 parameter (EMAIL;INTERNET:) is a TYPE
                by_name.setdefault("TYPE", []).append(str(param[0]))
            else:
                by_name.setdefault(str(param[0]).upper(), []).extend(str(v) for v in param[1:])
        props.setdefault(name, []).append(Prop(by_name, value))
    if "VERSION" not in props:
        raise VCardError("no VERSION")
    return props


def _vobject_parse_line() -> Any:
    import vobject.base  # type: ignore[import-untyped]

    return vobject.base.parseLine


def parse(text: str) -> Parsed:
    """Read a card's mapped fields; :class:`VCardError` when it is not a readable vCard."""
    contents = _properties(text)
    data: dict[str, RawValue] = {}
    picks: dict[str, int] = {}

    def first(name: str) -> Prop | None:
        lines = contents.get(name)
        return lines[0] if lines else None

    emails = contents.get("EMAIL", [])
    at = pick_email(emails)
    if at is not None:
        data["email"] = _text(emails[at].value)
        picks["email"] = at
    fn = first("FN")
    if fn is not None:
        data["fn"] = _text(fn.value)
    n = first("N")
    if n is not None:
        parts = _split_components(n.value)
        data["family"] = _text(parts[0]) if parts else None
        data["given"] = _text(parts[1]) if len(parts) > 1 else None
    org = first("ORG")
    if org is not None:
        data["org"] = _text(_split_components(org.value)[0])
    title = first("TITLE")
    if title is not None:
        data["title"] = _text(title.value)
    tels = contents.get("TEL", [])
    for kind in ("tel", "cell"):
        at = pick_tel(tels, kind)
        if at is not None:
            data[kind] = _tel_value(tels[at])
            picks[kind] = at
    url = first("URL")
    if url is not None:
        data["url"] = _text(url.value)
    adrs = contents.get("ADR", [])
    at = pick_adr(adrs)
    if at is not None:
        picks["adr"] = at
        parts = _split_components(adrs[at].value)
        parts += [""] * (7 - len(parts))
        for key, index in ADR_INDEX.items():
            data[key] = _text(parts[index])
    if "CATEGORIES" in contents:
        categories: list[str] = []
        for line in contents["CATEGORIES"]:
            for item in _split_components(line.value, ","):
                tag = _unescape(item).strip()
                if tag and tag not in categories:
                    categories.append(tag)
        data["categories"] = tuple(categories)
    note = first("NOTE")
    if note is not None:
        data["note"] = _text(note.value)
    for name, lines in contents.items():
        if name.startswith("X-") and lines:
            data[CUSTOM + name[2:].lower()] = _text(lines[0].value)
    uid = first("UID")
    return Parsed(data, _text(uid.value) if uid is not None else None, picks)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


# --- writing ------------------------------------------------------------------------------


def _set(data: Mapping[str, RawValue], key: str) -> bool:
    return key in data


def _value(data: Mapping[str, RawValue], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, tuple | list | frozenset):
        return ",".join(sorted(value) if isinstance(value, frozenset) else value) or None
    return str(value).strip() or None


def _tags(value: RawValue) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [t.strip() for t in value.split(",") if t.strip()]
    items = sorted(value) if isinstance(value, frozenset) else list(value)
    return [str(t).strip() for t in items if str(t).strip()]


def _split_value(unfolded: str) -> tuple[str, str]:
    """A content line's head (group, name, params) and its value, quotes in params respected."""
    quoted = False
    for i, char in enumerate(unfolded):
        if char == '"':
            quoted = not quoted
        elif char == ":" and not quoted:
            return unfolded[:i], unfolded[i + 1 :]
    return unfolded, ""


def _split_components(value: str, sep: str = ";") -> list[str]:
    """Split a structured value at unescaped separators, keeping the escapes."""
    if "\\" not in value:  # nothing escaped (most values): every separator splits
        return value.split(sep)
    parts, current, i = [], [], 0
    while i < len(value):
        char = value[i]
        if char == "\\" and i + 1 < len(value):
            current.append(value[i : i + 2])
            i += 2
            continue
        if char == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    parts.append("".join(current))
    return parts


class CardEditor:
    """Edits one card's mapped properties in place (see the module docstring)."""

    def __init__(self, text: str, picks: Mapping[str, int]) -> None:
        self.newline = newline_of(text)
        if not text.endswith(("\n", "\r")):
            text += self.newline
        self.lines = split_lines(text)
        self.picks = dict(picks)
        self.version = "3.0"
        for line in self.lines:
            if line.name == "VERSION":
                self.version = _split_value(line.unfolded)[1].strip() or "3.0"

    def text(self) -> str:
        return "".join(line.raw for line in self.lines)

    # helpers

    def _indexes(self, name: str) -> list[int]:
        return [i for i, line in enumerate(self.lines) if line.name == name]

    def _make(self, head: str, value: str) -> Line:
        name = head.split(";", 1)[0]
        group, dot, bare = name.rpartition(".")
        return Line(fold(f"{head}:{value}", self.newline), bare.upper(), group if dot else None)

    def _insert(self, line: Line) -> None:
        end = max(i for i, existing in enumerate(self.lines) if existing.name == "END")
        self.lines.insert(end, line)

    def _replace_value(self, index: int, value: str) -> None:
        head, _ = _split_value(self.lines[index].unfolded)
        self.lines[index] = self._make(head, value)

    def _set_single(self, name: str, value: str | None, head: str | None = None) -> None:
        """The first ``name`` line gets ``value`` (its parameters kept); None removes it."""
        found = self._indexes(name)
        if value is None:
            if found:
                del self.lines[found[0]]
            return
        if found:
            self._replace_value(found[0], value)
        else:
            self._insert(self._make(head or name, value))

    def _set_picked(self, name: str, pick: str, value: str | None, head: str) -> None:
        found = self._indexes(name)
        at = self.picks.get(pick)
        if at is not None and at < len(found):
            index = found[at]
            if value is None:
                del self.lines[index]
                self._shift(name, at)
            else:
                current_head, current = _split_value(self.lines[index].unfolded)
                if current.lower().startswith("tel:") and name == "TEL":
                    value = "tel:" + value
                self.lines[index] = self._make(current_head, value)
            return
        if value is not None:
            self._insert(self._make(head, value))
            self.picks[pick] = len(found)

    def _shift(self, name: str, removed: int) -> None:
        """After line ``removed`` of ``name`` went, later picks of that name move up."""
        same = {"EMAIL": ("email",), "TEL": ("tel", "cell"), "ADR": ("adr",)}.get(name, ())
        for key in same:
            at = self.picks.get(key)
            if at is None:
                continue
            if at == removed:
                del self.picks[key]
            elif at > removed:
                self.picks[key] = at - 1

    # the edit

    def apply(self, data: Mapping[str, RawValue]) -> None:
        if _set(data, "email"):
            self._set_picked("EMAIL", "email", _esc(_value(data, "email")), "EMAIL;TYPE=INTERNET")
        for key, name in (("fn", "FN"), ("title", "TITLE"), ("note", "NOTE"), ("url", "URL")):
            if _set(data, key):
                value = _value(data, key)
                self._set_single(name, _url(value) if name == "URL" and value else _esc(value))
        if _set(data, "org"):
            self._set_structured("ORG", {0: _value(data, "org")}, 1)
        if _set(data, "given") or _set(data, "family"):
            parts: dict[int, str | None] = {}
            if _set(data, "family"):
                parts[0] = _value(data, "family")
            if _set(data, "given"):
                parts[1] = _value(data, "given")
            self._set_structured("N", parts, 5, keep_empty=True)
        if _set(data, "tel"):
            head = (
                "TEL;TYPE=WORK,VOICE" if self.version.startswith("3") else 'TEL;TYPE="work,voice"'
            )
            self._set_picked("TEL", "tel", _esc(_value(data, "tel")), head)
        if _set(data, "cell"):
            head = "TEL;TYPE=CELL" if self.version.startswith("3") else "TEL;TYPE=cell"
            self._set_picked("TEL", "cell", _esc(_value(data, "cell")), head)
        if any(_set(data, key) for key in ADR_FIELDS):
            self._set_adr({ADR_INDEX[k]: _value(data, k) for k in ADR_FIELDS if _set(data, k)})
        if _set(data, "categories"):
            tags = _tags(data.get("categories"))
            for index in reversed(self._indexes("CATEGORIES")[1:]):
                del self.lines[index]
            self._set_single("CATEGORIES", ",".join(escape(t) for t in tags) if tags else None)
        for key in data:
            if key.startswith(CUSTOM):
                name = "X-" + key[len(CUSTOM) :].upper()
                self._set_single(name, _esc(_value(data, key)))
        if not self._indexes("FN"):  # FN is required: cleared, it is made from the rest
            self._set_single("FN", escape(derived_fn({**self._current(), **data})))

    def _current(self) -> dict[str, RawValue]:
        """The names, organisation and email the card holds now (to make an FN from)."""
        current: dict[str, RawValue] = {}
        for key, name, index in (("family", "N", 0), ("given", "N", 1), ("org", "ORG", 0)):
            found = self._indexes(name)
            if found:
                parts = _split_components(_split_value(self.lines[found[0]].unfolded)[1])
                if index < len(parts) and parts[index]:
                    current[key] = _unescape(parts[index])
        emails = self._indexes("EMAIL")
        if emails:
            current["email"] = _split_value(self.lines[emails[0]].unfolded)[1].strip() or None
        return current

    def _set_structured(
        self, name: str, parts: Mapping[int, str | None], size: int, keep_empty: bool = False
    ) -> None:
        found = self._indexes(name)
        if found:
            head, value = _split_value(self.lines[found[0]].unfolded)
            components = _split_components(value)
        else:
            head, components = name, []
        components += [""] * (max(size, max(parts) + 1) - len(components))
        for index, part in parts.items():
            components[index] = escape(part) if part else ""
        if not any(components) and not keep_empty:
            if found:
                del self.lines[found[0]]
            return
        joined = ";".join(components)
        if found:
            self.lines[found[0]] = self._make(head, joined)
        else:
            self._insert(self._make(head, joined))

    def _set_adr(self, parts: Mapping[int, str | None]) -> None:
        found = self._indexes("ADR")
        at = self.picks.get("adr")
        if at is not None and at < len(found):
            index = found[at]
            head, value = _split_value(self.lines[index].unfolded)
            components = _split_components(value)
            components += [""] * (7 - len(components))
            for i, part in parts.items():
                components[i] = escape(part) if part else ""
            if any(components):
                self.lines[index] = self._make(head, ";".join(components))
            else:
                del self.lines[index]
                self._shift("ADR", at)
            return
        if not any(parts.values()):
            return
        components = [""] * 7
        for i, part in parts.items():
            components[i] = escape(part) if part else ""
        head = "ADR;TYPE=WORK" if self.version.startswith("3") else "ADR;TYPE=work"
        self._insert(self._make(head, ";".join(components)))
        self.picks["adr"] = len(found)


def _unescape(value: str) -> str:
    if "\\" not in value:
        return value
    return _ESCAPED.sub(lambda m: "\n" if m.group(1) in "nN" else m.group(1), value)


def _esc(value: str | None) -> str | None:
    return escape(value) if value is not None else None


def derived_fn(data: Mapping[str, RawValue]) -> str:
    """A formatted name for a card that was given none (FN is required)."""
    words = [_value(data, "given"), _value(data, "family")]
    name = " ".join(w for w in words if w)
    return name or _value(data, "org") or _value(data, "email") or "Unnamed contact"


def uid_for(key: str) -> str:
    """A card's UID (and file name) for a create: stable for the write's key, so that a create
    sent again after a crash finds the card it made instead of making another."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "syncd-carddav:" + key))


def new_card(uid: str, data: Mapping[str, RawValue], newline: str = "\r\n") -> str:
    """A vCard 3.0 (what every server accepts, iCloud included) holding ``data``: a skeleton
    edited as any card is (:func:`built` makes the same text in one pass)."""
    fn = _value(data, "fn") or derived_fn(data)
    skeleton = "".join(
        [
            f"BEGIN:VCARD{newline}VERSION:3.0{newline}",
            f"PRODID:-//syncd//syncd-carddav//EN{newline}UID:{uid}{newline}",
            fold(f"FN:{escape(fn)}", newline),
            f"N:;;;;{newline}END:VCARD{newline}",
        ]
    )
    editor = CardEditor(skeleton, {})
    editor.apply({k: v for k, v in data.items() if k != "fn"})
    return editor.text()


_SIMPLE_NAME = re.compile(r"[A-Za-z0-9-]+")


def built(uid: str, data: Mapping[str, RawValue]) -> tuple[str, Parsed]:
    """:func:`new_card` and what :func:`parse` reads from it, made in one pass from what is
    put in the card instead of editing a skeleton and parsing the result (a first sync
    creates every card)."""
    composed = _composed(uid, data)
    if composed is not None:
        return composed
    text = new_card(uid, data)
    return text, parse(text)


def _composed(uid: str, data: Mapping[str, RawValue]) -> tuple[str, Parsed] | None:
    """The card's lines in :func:`new_card`'s order, each with the field a parse reads from
    it; None where only the editor and a parse can tell (custom fields whose names are not
    plain property names, or two that name one property)."""
    nl = "\r\n"
    values = {key: _value(data, key) for key in data}
    get = values.get
    out: dict[str, RawValue] = {}
    picks: dict[str, int] = {}
    fn = get("fn") or derived_fn(data)
    fn_escaped = escape(fn)
    out["fn"] = _text(fn_escaped)
    lines = [
        f"BEGIN:VCARD{nl}VERSION:3.0{nl}PRODID:-//syncd//syncd-carddav//EN{nl}UID:{uid}{nl}",
        fold(f"FN:{fn_escaped}", nl),
    ]
    family, given = get("family"), get("given")
    family_escaped = escape(family) if family else ""
    given_escaped = escape(given) if given else ""
    lines.append(fold(f"N:{family_escaped};{given_escaped};;;", nl))
    out["family"], out["given"] = _text(family_escaped), _text(given_escaped)
    email = get("email")
    if email is not None:
        escaped = escape(email)
        lines.append(fold(f"EMAIL;TYPE=INTERNET:{escaped}", nl))
        out["email"] = _text(escaped)
        picks["email"] = 0
    for key, name in (("title", "TITLE"), ("note", "NOTE")):
        value = get(key)
        if value is not None:
            escaped = escape(value)
            lines.append(fold(f"{name}:{escaped}", nl))
            out[key] = _text(escaped)
    url = get("url")
    if url is not None:
        held = _url(url)
        lines.append(fold(f"URL:{held}", nl))
        out["url"] = _text(held)
    org = get("org")
    if org is not None:
        escaped = escape(org)
        if escaped:
            lines.append(fold(f"ORG:{escaped}", nl))
        out["org"] = _text(escaped)
    tels = 0
    for key, head in (("tel", "TEL;TYPE=WORK,VOICE"), ("cell", "TEL;TYPE=CELL")):
        value = get(key)
        if value is not None:
            escaped = escape(value)
            lines.append(fold(f"{head}:{escaped}", nl))
            out[key] = _tel_text(_text(escaped))
            picks[key] = tels
            tels += 1
    parts = {key: get(key) for key in ADR_FIELDS if key in values}
    if any(parts.values()):
        components = [""] * 7
        for key in ADR_FIELDS:
            part = parts.get(key)
            escaped = escape(part) if part else ""
            components[ADR_INDEX[key]] = escaped
            out[key] = _text(escaped)
        lines.append(fold("ADR;TYPE=WORK:" + ";".join(components), nl))
        picks["adr"] = 0
    if "categories" in values:
        tags = _tags(data.get("categories"))
        if tags:
            escaped_tags = [escape(tag) for tag in tags]
            lines.append(fold("CATEGORIES:" + ",".join(escaped_tags), nl))
            categories: list[str] = []
            for escaped in escaped_tags:
                held_tag = _unescape(escaped).strip()
                if held_tag and held_tag not in categories:
                    categories.append(held_tag)
            out["categories"] = tuple(categories)
    customs: set[str] = set()
    for key, value in values.items():
        if not key.startswith(CUSTOM):
            continue
        name = key[len(CUSTOM) :]
        upper = name.upper()
        if not _SIMPLE_NAME.fullmatch(name) or upper in customs:
            return None
        customs.add(upper)
        if value is not None:
            escaped = escape(value)
            lines.append(fold(f"X-{upper}:{escaped}", nl))
            out[CUSTOM + upper.lower()] = _text(escaped)
    lines.append(f"END:VCARD{nl}")
    return "".join(lines), Parsed(out, uid, picks)


def edit(text: str, picks: Mapping[str, int], data: Mapping[str, RawValue]) -> str:
    """``text`` with the properties of ``data`` changed and nothing else touched."""
    editor = CardEditor(text, picks)
    editor.apply(data)
    return editor.text()
