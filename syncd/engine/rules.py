"""IF/THEN rules per direction (PieSync's filters and actions).

With rules present for a direction, a record travels in that direction only when at least one
rule's conditions hold; the actions of every matching rule are then applied, in order, to the
values sent to the other side. Conditions see the source record's normalised values by canonical
name (``custom.<key>`` for custom fields).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache

from syncd.config import Action, Condition, Rule
from syncd.contact import FieldValue, normalise_tags


@lru_cache(maxsize=256)
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(text)


def _as_text(value: FieldValue) -> str:
    if value is None:
        return ""
    if isinstance(value, frozenset):
        return ";".join(sorted(value))
    return value


def condition_holds(condition: Condition, values: Mapping[str, FieldValue]) -> bool:
    value = values.get(condition.field)
    op = condition.op
    if op == "is_set":
        return value is not None
    if op == "is_empty":
        return value is None
    expected = condition.value
    if op == "equals":
        return _equals(value, expected)
    if op == "not_equals":
        return not _equals(value, expected)
    if op == "contains":
        needle = str(expected).casefold()
        if isinstance(value, frozenset):
            return any(tag.casefold() == needle for tag in value)
        return needle in _as_text(value).casefold()
    if op == "in":
        return any(_equals(value, option) for option in expected)
    if op == "matches":
        return _pattern(str(expected)).search(_as_text(value)) is not None
    raise ValueError(f"unknown operator {op!r}")  # config validation makes this unreachable


def _equals(value: FieldValue, expected: object) -> bool:
    if isinstance(value, frozenset):
        items = expected if isinstance(expected, list) else [expected]
        return {str(t).casefold() for t in items} == {t.casefold() for t in value}
    return _as_text(value).casefold() == str(expected).casefold()


def rule_matches(rule: Rule, values: Mapping[str, FieldValue]) -> bool:
    if not rule.conditions:
        return True
    results = (condition_holds(c, values) for c in rule.conditions)
    return any(results) if rule.match == "any" else all(results)


def matching_rules(rules: Sequence[Rule], values: Mapping[str, FieldValue]) -> list[Rule] | None:
    """The rules that match, or ``None`` when the record must not travel this way."""
    if not rules:
        return []
    matched = [rule for rule in rules if rule_matches(rule, values)]
    return matched or None


def apply_actions(rules: Sequence[Rule], values: dict[str, FieldValue]) -> dict[str, FieldValue]:
    """``values`` with the actions of ``rules`` applied (a new dict; the input is kept)."""
    result = dict(values)
    for rule in rules:
        for action in rule.actions:
            _apply(action, result)
    return result


def _apply(action: Action, values: dict[str, FieldValue]) -> None:
    if action.kind == "set":
        if action.field == "tags":
            values["tags"] = normalise_tags(action.value)
        else:
            values[action.field] = str(action.value) if action.value != "" else None
        return
    current = values.get("tags")
    tags = set(current) if isinstance(current, frozenset) else set()
    if action.kind == "add_tag":
        tags.add(str(action.value))
    else:
        wanted = str(action.value).casefold()
        tags = {t for t in tags if t.casefold() != wanted}
    values["tags"] = frozenset(tags) or None


# --- in words (``syncd explain``, the console's sync page) ------------------------------------

_OPERATOR_WORDS = {
    "equals": "equals",
    "not_equals": "does not equal",
    "contains": "contains",
    "is_set": "is set",
    "is_empty": "is empty",
    "in": "is one of",
    "matches": "matches",
}


def _shown(value: object) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(_shown(v) for v in value)
    return str(value)


def describe_condition(condition: Condition) -> str:
    """``tags contains customer``, ``email matches /@acme\\.com$/``, ``company is set``."""
    words = _OPERATOR_WORDS.get(condition.op, condition.op)
    if condition.op in ("is_set", "is_empty"):
        return f"{condition.field} {words}"
    if condition.op == "matches":
        return f"{condition.field} {words} /{condition.value}/"
    return f"{condition.field} {words} {_shown(condition.value)}"


def describe_action(action: Action) -> str:
    """``add tag from-xero``, ``remove tag lead``, ``set company to ACME``, ``clear notes``."""
    if action.kind == "add_tag":
        return f"add tag {action.value}"
    if action.kind == "remove_tag":
        return f"remove tag {action.value}"
    if action.value in ("", None, [], ()):
        return f"clear {action.field}"
    return f"set {action.field} to {_shown(action.value)}"


def describe_rule(rule: Rule) -> str:
    """A rule as a sentence: ``IF tags contains customer THEN add tag from-xero``."""
    joiner = " OR " if rule.match == "any" else " AND "
    condition = joiner.join(describe_condition(c) for c in rule.conditions)
    action = " AND ".join(describe_action(a) for a in rule.actions) or "sync it"
    if not rule.conditions:
        return f"ALWAYS {action}"
    return f"IF {condition} THEN {action}"


def why_no_rule_matched(rules: Sequence[Rule], values: Mapping[str, FieldValue]) -> str:
    """Why a record did not travel: for each rule, which of its conditions did not hold."""
    parts = []
    for number, rule in enumerate(rules, 1):
        failed = [c for c in rule.conditions if not condition_holds(c, values)]
        if rule.match == "any" or len(failed) == len(rule.conditions) > 1:
            what = "none of its conditions holds"
        else:
            what = f"{describe_condition(failed[0])} does not hold" if failed else "it holds"
        parts.append(f"rule {number} ({describe_rule(rule)}): {what}")
    return "; ".join(parts)
