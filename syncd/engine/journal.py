"""The change journal as history (issue 15): why each write was made, what it replaced.

The executor journals every write before it is sent (rule 4, :class:`syncd.store.JournalRow`);
this module adds what a person reading the history, or an undo, needs beside the hashes: the
record's email, the reason (merged from a side, a conflict the winner setting decided, a rule
action, the deletion policy, an undo), and per app field its view key and the value the target
held before, as listed when the run planned. Values are the app's own (by its field names), so
that an undo can send them back exactly as they were.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from syncd.engine.fields import value_hash
from syncd.engine.model import PairPlan, PlanInput, Write, other

_ENCODE = json.JSONEncoder(separators=(",", ":"), default=str).encode

#: the reasons, as the journal keeps them (and ``syncd changes`` prints them)
MERGED = "merged from side {source}"
CREATED = "created from side {source}"
CONFLICT = "conflict won by side {source} (winner = {winner})"
RULE = "rule action ({direction})"
DELETION = "deletion policy {policy} (deleted on side {deleted})"
UNDO = "undo of run {run}"
REVIEWED = "review {decision}: deleted on side {deleted}"


def write_reasons(
    inp: PlanInput | None, pair: PairPlan, write: Write, pair_keys: frozenset[str]
) -> tuple[str, dict[str, str]]:
    """The reason of a write, and per view key the fields whose reason differs from it."""
    target = write.side
    source = other(target)
    if pair.link.state == "linked" and pair.state.startswith("gone_"):
        deleted = pair.state[-1]
        policy = inp.deletions if inp is not None else "tag"
        return DELETION.format(policy=policy, deleted=deleted), {}
    main = (CREATED if write.record_id is None else MERGED).format(source=source)
    special: dict[str, str] = {}
    winner = inp.winner if inp is not None else "a"
    for conflict in pair.conflicts:
        if conflict.field in write.values and conflict.winner == source:
            special[conflict.field] = CONFLICT.format(source=source, winner=winner)
    if inp is not None and inp.rules(target):
        direction = f"{source}-to-{target}"
        own = _source_hashes(pair, source)
        for key, value in write.values.items():
            if key not in pair_keys:
                special[key] = RULE.format(direction=direction)
            elif own is not None:
                new = value_hash(value) if value is not None else None
                if new != own.get(key):
                    special[key] = RULE.format(direction=direction)
    return main, special


def _source_hashes(pair: PairPlan, source: str) -> dict[str, str] | None:
    raw = pair.base.get(source)
    if raw is None:
        return None
    value: dict[str, str] = json.loads(raw)
    return value


def detail(
    app_names: Mapping[str, str],
    keys: Any,
    before: Mapping[str, Any] | None,
    reasons: Mapping[str, str],
) -> str | None:
    """The ``detail`` JSON text of a journal row: per app field, its view key where the name
    differs (``k``), the value before (``b``, an update's), its own reason (``r``)."""
    # per write of a first merge (100,000s): a few dict look-ups, nothing made of the mapping
    renamed = {name: key for key in keys if (name := app_names.get(key, key)) != key}
    if before is None and not reasons:
        # most creates: nothing but the names, encoded once per set of renamed fields
        return _names_json(tuple(renamed.items())) if renamed else None
    out: dict[str, Any] = {}
    if renamed:
        out[_K] = renamed
    if before is not None:
        out["b"] = dict(before)
    if reasons:
        out["r"] = {app_names.get(key, key): why for key, why in reasons.items()}
    return _ENCODE(out) if out else None


_K = "k"


@functools.lru_cache(maxsize=512)
def _names_json(renamed: tuple[tuple[str, str], ...]) -> str:
    """``{"k": {app field: view key}}`` as JSON text: most writes of a run share a handful."""
    return _ENCODE({_K: dict(renamed)})


def before_values(inp: PlanInput | None, side: str, record_id: str | None, names: Any) -> Any:
    """The app's values of ``names`` on record ``record_id`` as listed when planned."""
    if inp is None or record_id is None:
        return None
    info = inp.side(side)
    # the raw record as listed (never made into an engine record: that would fingerprint it)
    record = info.records.get(record_id)
    if record is not None:
        raw = record.raw
    else:
        remote = info.unchanged.get(record_id)
        if remote is None:
            return None
        raw = remote.data
    return {name: raw.get(name) for name in names}
