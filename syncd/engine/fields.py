"""Which fields travel between the two sides, and how records are turned into comparable values.

A :class:`FieldPair` joins one field of side a to one field of side b under a stable key (the
canonical name for default pairs). Records are normalised into a *view* keyed by those keys, and
each value is hashed in its loose form (:func:`syncd.contact.loosely_equal`), so that the status
database keeps hashes, never contact data, and an app's re-casing is not an edit.
"""

from __future__ import annotations

import functools
import hashlib
import json
import marshal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from syncd.config import SyncConfig, resolve_field
from syncd.connector import Connector, RawValue, RemoteRecord
from syncd.contact import (
    CANONICAL_FIELDS,
    CUSTOM_PREFIX,
    FieldValue,
    field_kind,
    is_canonical,
    normalise,
)
from syncd.store import encode_base


@dataclass(frozen=True, slots=True)
class FieldPair:
    key: str
    a: str
    b: str
    kind: str
    a_to_b: bool
    b_to_a: bool

    def field(self, side: str) -> str:
        return self.a if side == "a" else self.b

    def travels_to(self, side: str) -> bool:
        return self.a_to_b if side == "b" else self.b_to_a


def _canonical_field(cls: type[Connector], canonical: str) -> str | None:
    for spec in cls.fields:
        if spec.canonical == canonical:
            return spec.name
    if canonical.startswith(CUSTOM_PREFIX) and cls.capabilities.custom_fields:
        return canonical
    return None


def _writable(cls: type[Connector], name: str) -> bool:
    spec = cls.field_spec(name)
    return spec is None or not spec.read_only


def _kind_of(cls: type[Connector], name: str) -> str | None:
    spec = cls.field_spec(name)
    if spec is not None and spec.canonical:
        return field_kind(spec.canonical)
    if name in CANONICAL_FIELDS:
        return field_kind(name)
    return None


def _canonical_name(cls: type[Connector], name: str) -> str | None:
    spec = cls.field_spec(name)
    if spec is not None:
        return spec.canonical
    return name if is_canonical(name) else None


def _custom_key(a_cls: type[Connector], a: str, b_cls: type[Connector], b: str) -> str:
    """A custom pair is known by a canonical name where either side has one, so rules can name
    it (``custom.xero_account_number``)."""
    return _canonical_name(b_cls, b) or _canonical_name(a_cls, a) or f"{a}~{b}"


def build_pairs(sync: SyncConfig) -> list[FieldPair]:
    """The default pairs (a canonical field both connectors map) plus the sync's ``[[fields]]``.

    A custom mapping replaces any default pair that uses either of its fields.
    """
    a_cls, b_cls = sync.a.connector_class, sync.b.connector_class
    sync_ab = sync.direction in ("two-way", "a-to-b")
    sync_ba = sync.direction in ("two-way", "b-to-a")
    custom: list[FieldPair] = []
    used_a: set[str] = set()
    used_b: set[str] = set()
    for mapping in sync.fields:
        a_name = resolve_field(a_cls, mapping.a)
        b_name = resolve_field(b_cls, mapping.b)
        if a_name is None or b_name is None:  # validated by config; kept for type narrowing
            continue
        kind = _kind_of(a_cls, a_name) or _kind_of(b_cls, b_name) or "text"
        custom.append(
            FieldPair(
                key=_custom_key(a_cls, a_name, b_cls, b_name),
                a=a_name,
                b=b_name,
                kind=kind,
                a_to_b=sync_ab
                and mapping.direction in ("two-way", "a-to-b")
                and _writable(b_cls, b_name),
                b_to_a=sync_ba
                and mapping.direction in ("two-way", "b-to-a")
                and _writable(a_cls, a_name),
            )
        )
        used_a.add(a_name)
        used_b.add(b_name)
    pairs: list[FieldPair] = []
    declared_custom = [
        spec.canonical
        for cls in (a_cls, b_cls)
        for spec in cls.fields
        if spec.canonical and spec.canonical.startswith(CUSTOM_PREFIX)
    ]
    for canonical in dict.fromkeys((*CANONICAL_FIELDS, *declared_custom)):
        a_name = _canonical_field(a_cls, canonical)
        b_name = _canonical_field(b_cls, canonical)
        if a_name is None or b_name is None or a_name in used_a or b_name in used_b:
            continue
        pairs.append(
            FieldPair(
                key=canonical,
                a=a_name,
                b=b_name,
                kind=field_kind(canonical),
                a_to_b=sync_ab and _writable(b_cls, b_name),
                b_to_a=sync_ba and _writable(a_cls, a_name),
            )
        )
    return pairs + custom


@dataclass(frozen=True)
class SideFields:
    """How one side's raw records become views: (key, app field, kind) triples."""

    side: str
    fields: tuple[tuple[str, str, str], ...]
    phone_region: str
    signature: bytes

    @classmethod
    def build(
        cls, side: str, pairs: Sequence[FieldPair], connector: type[Connector], region: str
    ) -> SideFields:
        triples = [(p.key, p.field(side), p.kind) for p in pairs]
        paired = {p.key for p in pairs}
        # canonical fields only this side has are still in the view, for rules to test
        for spec in connector.fields:
            if spec.canonical and spec.canonical not in paired:
                triples.append((spec.canonical, spec.name, field_kind(spec.canonical)))
                paired.add(spec.canonical)
        signature = "|".join(f"{k}={f}:{kind}" for k, f, kind in triples) + f"|{region}"
        return cls(
            side,
            tuple(triples),
            region,
            hashlib.blake2b(signature.encode(), digest_size=8).digest(),
        )

    def has(self, key: str) -> bool:
        """Whether this side's records hold the view key ``key`` at all."""
        return any(k == key for k, _, _ in self.fields)

    def view(self, data: Mapping[str, RawValue]) -> dict[str, FieldValue]:
        values: dict[str, FieldValue] = {}
        region = self.phone_region
        for key, name, kind in self.fields:
            raw = data.get(name)
            if raw is None or raw == "":
                continue
            value = normalise(kind, raw, region)
            if value is not None:
                values[key] = value
        return values

    def value(self, data: Mapping[str, RawValue], key: str) -> FieldValue:
        """One value of the view, without making the rest (matching needs only emails)."""
        for view_key, name, kind in self.fields:
            if view_key == key:
                raw = data.get(name)
                return None if raw is None or raw == "" else normalise(kind, raw, self.phone_region)
        return None

    def base_with_stored(self, base_json: str | None, stored: Mapping[str, RawValue]) -> str | None:
        """A base (JSON text) in which the fields the app stored otherwise than sent hold
        what it stored (``WriteResult.stored``): the record's agreed values are what the app
        holds, so a value it derived or kept is never taken for an edit on the next run."""
        base: dict[str, str] = json.loads(base_json) if base_json else {}
        for key, name, _ in self.fields:
            if name in stored:
                value = self.value(stored, key)
                if value is None:
                    base.pop(key, None)
                else:
                    base[key] = value_hash(value)
        return encode_base(base)

    def record_fingerprint(self, record: RemoteRecord) -> str:
        """The app's version where it gives one (cheap), else a digest of the record."""
        if record.version is not None:
            return self.version_fingerprint(record.version, record.archived)
        return self.fingerprint(record.data, record.archived)

    def version_fingerprint(self, version: str, archived: bool = False) -> str:
        return "v:" + version + (self._archived_suffix if archived else self.version_suffix)

    @functools.cached_property
    def signature_hex(self) -> str:
        return self.signature.hex()

    @functools.cached_property
    def version_suffix(self) -> str:
        return ":" + self.signature_hex

    @functools.cached_property
    def _archived_suffix(self) -> str:
        return ":A" + self.signature_hex

    def fingerprint(self, data: Mapping[str, RawValue], archived: bool) -> str:
        """A digest of the whole raw record: equal means nothing in it changed.

        ``marshal`` serialises the record in C, keys in the order the connector gave them: a
        connector that reorders keys, or returns sets, only makes records look changed (they are
        then normalised and compared field by field), never hides a change.
        """
        digest = self._seed.copy()
        # version 2: no back-references, so equal records always give equal bytes
        digest.update(marshal.dumps((archived, data), 2))  # type: ignore[arg-type]
        return str(digest.hexdigest())

    @functools.cached_property
    def _seed(self) -> Any:
        return hashlib.blake2b(self.signature, digest_size=12)


# small: it pays for repeated values (companies, cities, tags); most values are unique
@functools.lru_cache(maxsize=1 << 12)
def value_hash(value: FieldValue) -> str:
    """A short digest of a value's loose form (letter case folded, tags as a sorted set)."""
    if isinstance(value, frozenset):
        text = "\x1f".join(sorted(t.casefold() for t in value))
    else:
        text = (value or "").casefold()
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


def hashes(values: Mapping[str, FieldValue]) -> dict[str, str]:
    return {key: value_hash(value) for key, value in values.items() if value is not None}


def to_raw(value: FieldValue) -> RawValue:
    """A view value as sent to a connector (tags as a sorted tuple)."""
    if isinstance(value, frozenset):
        return tuple(sorted(value))
    return value
