"""The wizard's form: what a connector declares turned into fields, and a posted form turned back
into TOML values (sides, settings, field mappings, IF/THEN rules) for :mod:`syncd.config_write`.
No I/O here but reading the secret values out of the form."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from syncd.config_rules import OPERATORS, OPERATORS_WITHOUT_VALUE
from syncd.connector import Connector, Setting

SYNC_SETTINGS: list[tuple[str, str, tuple[str, ...] | None, str]] = [
    (
        "direction",
        "Which way records travel: both ways, or only from one app to the other.",
        ("two-way", "a-to-b", "b-to-a"),
        "two-way",
    ),
    (
        "interval",
        "How often the sync runs, e.g. 10m, 1h (a run also follows webhooks).",
        None,
        "10m",
    ),
    (
        "winner",
        "Who wins when both apps changed the same field since the last run.",
        ("a", "b", "newest"),
        "a",
    ),
    (
        "deletions",
        "What a deletion or archive on one side does to the linked record.",
        ("ignore", "tag", "archive"),
        "ignore",
    ),
    (
        "match",
        "How contacts already in both apps are recognised as the same person.",
        ("email", "email+phone"),
        "email",
    ),
    (
        "phone_region",
        "The country phone numbers without a +country code belong to (GB, US…).",
        None,
        "",
    ),
]
INITIAL_CHOICES = [
    ("new-only", "Only new data", "link what matches, copy only contacts created from now on"),
    ("merge", "Merge both ways", "link matching contacts and copy the rest both ways"),
    ("a-into-b", "Merge A into B", "copy everything from app a into app b, nothing back"),
    ("b-into-a", "Merge B into A", "copy everything from app b into app a, nothing back"),
]
ACTIONS = ("add_tag", "remove_tag", "set")
RULE_SLOTS = 2
CONDITION_SLOTS = 3
ACTION_SLOTS = 2
MAPPING_SLOTS = 2
_RULE_KEY = re.compile(r"^rules\.(a-to-b|b-to-a)\[(\d+)\](?:\.(if|then)\[(\d+)\])?(?:\.(\w+))?")
_FIELD_KEY = re.compile(r"^fields\[(\d+)\](?:\.(\w+))?")


@dataclass
class SettingField:
    name: str
    form_name: str
    help: str
    kind: str  # text | number | password | select | bool
    required: bool
    default: str
    choices: tuple[str, ...] = ()
    value: str = ""
    stored: bool = False  # a secret is already stored (left empty: kept)


@dataclass
class Parsed:
    top: dict[str, Any] = field(default_factory=dict)
    sides: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: secrets typed into the form, by (side, key)
    secrets: dict[tuple[str, str], str] = field(default_factory=dict)
    fields: list[dict[str, str]] = field(default_factory=list)
    rules: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: form rows, as the template shows them again
    mapping_rows: list[dict[str, str]] = field(default_factory=list)
    rule_rows: list[dict[str, Any]] = field(default_factory=list)
    #: (direction, index in direction) → rule row index
    rule_index: dict[tuple[str, int], int] = field(default_factory=dict)


def _kind(spec: Setting) -> str:
    if spec.secret:
        return "password"
    if spec.choices:
        return "select"
    if spec.type is bool:
        return "bool"
    if spec.type in (int, float):
        return "number"
    return "text"


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def setting_fields(side: str, cls: type[Connector], current: dict[str, Any]) -> list[SettingField]:
    fields = []
    for spec in cls.settings:
        value = current.get(spec.name)
        kind = _kind(spec)
        stored = kind == "password" and value is not None
        fields.append(
            SettingField(
                spec.name,
                f"{side}.{spec.name}",
                spec.help,
                kind,
                spec.required,
                _shown(spec.default),
                tuple(str(c) for c in spec.choices or ()),
                "" if kind == "password" else _shown(value),
                stored,
            )
        )
    return fields


def _convert(spec: Setting, text: str) -> Any:
    """The form's text as the TOML value (a bad number stays text: ``syncd check`` says so)."""
    if spec.type is int and re.fullmatch(r"[+-]?\d{1,18}", text):
        return int(text)
    if spec.type is float:
        try:
            return float(text)
        except ValueError:
            return text
    if spec.type is bool:
        return {"true": True, "false": False}.get(text, text)
    if spec.type is list:
        return [part.strip() for part in text.split(",") if part.strip()]
    return text


def parse(data: dict[str, str], classes: dict[str, type[Connector]], new: bool) -> Parsed:
    parsed = Parsed()
    for key, _, _, _ in SYNC_SETTINGS:
        text = data.get(key, "").strip()
        parsed.top[key] = text or None
    for side, cls in classes.items():
        values: dict[str, Any] = {"connector": cls.name}
        for spec in cls.settings:
            text = data.get(f"{side}.{spec.name}", "").strip()
            if spec.secret:
                if not text:
                    continue  # kept as it is in the file (or missing: check says so)
                if text.startswith("${"):
                    values[spec.name] = text  # a reference the person wrote
                else:
                    parsed.secrets[(side, spec.name)] = text
                continue
            values[spec.name] = _convert(spec, text) if text else None
        parsed.sides[side] = values
    for i in range(int(data.get("mapping_count", MAPPING_SLOTS) or 0) + 1):
        a, b = data.get(f"m{i}.a", "").strip(), data.get(f"m{i}.b", "").strip()
        direction = data.get(f"m{i}.direction", "two-way").strip() or "two-way"
        if not a and not b:
            continue
        parsed.mapping_rows.append({"a": a, "b": b, "direction": direction})
        mapping = {"a": a, "b": b}
        if direction != "two-way":
            mapping["direction"] = direction
        parsed.fields.append(mapping)
    counts: dict[str, int] = {"a-to-b": 0, "b-to-a": 0}
    for i in range(int(data.get("rule_count", RULE_SLOTS) or 0) + 1):
        row: dict[str, Any] = {
            "direction": data.get(f"r{i}.direction", "a-to-b"),
            "match": data.get(f"r{i}.match", "all"),
            "conditions": [],
            "actions": [],
        }
        conditions, actions = [], []
        for j in range(CONDITION_SLOTS):
            name = data.get(f"r{i}.c{j}.field", "").strip()
            op = data.get(f"r{i}.c{j}.op", "").strip()
            value = data.get(f"r{i}.c{j}.value", "")
            if not name:
                continue
            row["conditions"].append({"field": name, "op": op, "value": value})
            condition: dict[str, Any] = {"field": name, "op": op}
            if op not in OPERATORS_WITHOUT_VALUE:
                condition["value"] = (
                    [v.strip() for v in value.split(",") if v.strip()] if op == "in" else value
                )
            conditions.append(condition)
        for j in range(ACTION_SLOTS):
            kind = data.get(f"r{i}.t{j}.kind", "").strip()
            value = data.get(f"r{i}.t{j}.value", "")
            target = data.get(f"r{i}.t{j}.field", "").strip()
            if not kind or (not value.strip() and kind != "set"):
                continue
            row["actions"].append({"kind": kind, "value": value, "field": target})
            if kind == "set":
                actions.append({"set": target, "value": value})
            else:
                actions.append({kind: value.strip()})
        if not conditions and not actions:
            continue
        direction = row["direction"] if row["direction"] in counts else "a-to-b"
        rule: dict[str, Any] = {"if": conditions, "then": actions}
        if row["match"] == "any":
            rule["match"] = "any"
        parsed.rule_index[(direction, counts[direction])] = len(parsed.rule_rows)
        counts[direction] += 1
        parsed.rule_rows.append(row)
        parsed.rules.setdefault(direction, []).append(rule)
    for direction in counts:
        parsed.rules.setdefault(direction, [])
    if new:
        parsed.top["enabled"] = False  # until "Start syncing", after the preview
    return parsed


def rows_from_file(data: dict[str, Any]) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """A sync file's ``[[fields]]`` and rules as form rows."""
    mappings = [
        {
            "a": str(m.get("a", "")),
            "b": str(m.get("b", "")),
            "direction": str(m.get("direction", "two-way")),
        }
        for m in data.get("fields", [])
        if isinstance(m, dict)
    ]
    rules = []
    raw_rules = data.get("rules", {}) if isinstance(data.get("rules"), dict) else {}
    for direction in ("a-to-b", "b-to-a"):
        for rule in raw_rules.get(direction, []) or []:
            if not isinstance(rule, dict):
                continue
            row: dict[str, Any] = {
                "direction": direction,
                "match": rule.get("match", "all"),
                "conditions": [],
                "actions": [],
            }
            for c in rule.get("if", []):
                value = c.get("value", "")
                row["conditions"].append(
                    {
                        "field": c.get("field", ""),
                        "op": c.get("op", ""),
                        "value": ", ".join(value) if isinstance(value, list) else str(value or ""),
                    }
                )
            for t in rule.get("then", []):
                if "set" in t:
                    row["actions"].append(
                        {"kind": "set", "field": t["set"], "value": _shown(t.get("value"))}
                    )
                else:
                    kind = "add_tag" if "add_tag" in t else "remove_tag"
                    row["actions"].append({"kind": kind, "field": "", "value": t.get(kind, "")})
            rules.append(row)
    return mappings, rules


def sentence(row: dict[str, Any], titles: dict[str, str]) -> str:
    """A rule as words: IF tags contains "customer" THEN add tag "from-xero"."""
    joiner = " or " if row.get("match") == "any" else " and "
    conditions = []
    for c in row.get("conditions", []):
        op = str(c.get("op", "")).replace("_", " ")
        value = "" if c.get("op") in OPERATORS_WITHOUT_VALUE else f' "{c.get("value", "")}"'
        conditions.append(f"{c.get('field')} {op}{value}")
    actions = []
    for t in row.get("actions", []):
        if t.get("kind") == "set":
            actions.append(f'set {t.get("field")} to "{t.get("value")}"')
        else:
            actions.append(f'{str(t.get("kind")).replace("_", " ")} "{t.get("value")}"')
    source, target = ("a", "b") if row.get("direction") == "a-to-b" else ("b", "a")
    where = f" ({titles.get(source, source)} → {titles.get(target, target)})"
    return (
        "IF "
        + (joiner.join(conditions) or "always")
        + " THEN "
        + (", ".join(actions) or "nothing")
        + where
    )


def form_key(key: str, parsed: Parsed | None) -> str:
    """The form field a ``syncd check`` problem's key belongs to."""
    match = _FIELD_KEY.match(key)
    if match:
        return f"m{match.group(1)}.{match.group(2) or 'a'}"
    match = _RULE_KEY.match(key)
    if match and parsed is not None:
        direction, index, part, number, leaf = match.groups()
        row = parsed.rule_index.get((direction, int(index)))
        if row is None:
            return "rules"
        if part is None:
            return f"r{row}.match"
        letter = "c" if part == "if" else "t"
        leaf = leaf or ("field" if part == "if" else "value")
        if part == "then" and leaf in ("add_tag", "remove_tag"):
            leaf = "value"
        if part == "then" and leaf == "set":
            leaf = "field"
        return f"r{row}.{letter}{number}.{leaf}"
    return key


__all__ = ["ACTIONS", "INITIAL_CHOICES", "OPERATORS", "SYNC_SETTINGS"]
