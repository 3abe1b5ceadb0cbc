"""Field mappings (``[[fields]]``) and rules (``[[rules.a-to-b]]``, ``[[rules.b-to-a]]``)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syncd.config_errors import ConfigError, Problems
from syncd.config_settings import SideConfig
from syncd.config_values import check_keys, check_regex, choice, show, string, type_name
from syncd.connector import Connector
from syncd.contact import CANONICAL_FIELDS, is_canonical

DIRECTIONS = ("two-way", "a-to-b", "b-to-a")
OPERATORS = ("equals", "not_equals", "contains", "is_set", "is_empty", "in", "matches")
OPERATORS_WITHOUT_VALUE = ("is_set", "is_empty")
CUSTOM_KEY = re.compile(r"^custom\.[A-Za-z0-9_][A-Za-z0-9_ .-]{0,99}$")


@dataclass(frozen=True)
class FieldMapping:
    a: str
    b: str
    direction: str = "two-way"


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: Any = None


@dataclass(frozen=True)
class Action:
    kind: str  # set | add_tag | remove_tag
    field: str
    value: Any = None


@dataclass(frozen=True)
class Rule:
    conditions: tuple[Condition, ...]
    actions: tuple[Action, ...]
    match: str = "all"


def tag_name(value: Any, path: Path, key: str) -> str:
    text = string(value, path, key).strip()
    if not text:
        raise ConfigError(path, key, "may not be empty")
    if len(text) > 100:
        raise ConfigError(path, key, "a tag may be 100 characters at most")
    return text


def writable_field(cls: type[Connector], canonical: str) -> bool:
    name = resolve_field(cls, canonical)
    if name is None:
        return False
    spec = cls.field_spec(name)
    return spec is None or not spec.read_only


def load_fields(
    raw: Any, a: SideConfig, b: SideConfig, direction: str, path: Path, problems: Problems
) -> tuple[FieldMapping, ...]:
    if not isinstance(raw, list):
        raise ConfigError(path, "fields", "expected [[fields]] tables")
    mappings = []
    found = Problems()
    used: dict[tuple[str, str], str] = {}
    for index, item in enumerate(raw):
        key = f"fields[{index}]"
        if not isinstance(item, dict):
            found.add(ConfigError(path, key, "expected a table with a, b and direction"))
            continue
        check_keys(item, ("a", "b", "direction"), path, f"{key}.", found)
        names: dict[str, str] = {}
        for side_name, side in (("a", a), ("b", b)):
            with found.check():
                if side_name not in item:
                    raise ConfigError(path, f"{key}.{side_name}", "missing field name")
                name = string(item[side_name], path, f"{key}.{side_name}")
                if name.startswith("custom.") and not CUSTOM_KEY.match(name):
                    raise ConfigError(
                        path,
                        f"{key}.{side_name}",
                        f"{show(name)} is not a custom field name (custom.<key>, the key "
                        "letters, digits, '_', '-', '.' or spaces)",
                    )
                resolved = resolve_field(side.connector_class, name)
                if resolved is None:
                    raise ConfigError(
                        path, f"{key}.{side_name}", f"{side.connector} has no field {show(name)}"
                    )
                if (side_name, resolved) in used:
                    raise ConfigError(
                        path,
                        f"{key}.{side_name}",
                        f"{show(name)} is already mapped by {used[(side_name, resolved)]}",
                    )
                used[(side_name, resolved)] = key
                names[side_name] = name
        with found.check():
            mapping_direction = choice(
                item.get("direction", "two-way"), DIRECTIONS, path, f"{key}.direction"
            )
            if direction != "two-way" and mapping_direction not in ("two-way", direction):
                raise ConfigError(
                    path,
                    f"{key}.direction",
                    f'{mapping_direction} goes against the sync\'s direction = "{direction}": '
                    "this field would never travel",
                )
            if len(names) == 2:
                mappings.append(FieldMapping(names["a"], names["b"], mapping_direction))
    if found:
        raise ConfigError.of(found.errors)
    return tuple(mappings)


def resolve_field(cls: type[Connector], name: str) -> str | None:
    """The connector's own field name for ``name``: an app field, a canonical field it maps, or
    a ``custom.<key>`` field when the connector takes arbitrary custom fields."""
    if cls.field_spec(name) is not None:
        return name
    for spec in cls.fields:
        if spec.canonical == name:
            return spec.name
    if name.startswith("custom.") and cls.capabilities.custom_fields and CUSTOM_KEY.match(name):
        return name
    return None


def load_all_rules(
    raw: Any, direction: str, path: Path, problems: Problems
) -> tuple[tuple[Rule, ...], tuple[Rule, ...]]:
    if not isinstance(raw, dict):
        raise ConfigError(path, "rules", "expected [[rules.a-to-b]] or [[rules.b-to-a]] tables")
    found = Problems()
    check_keys(raw, ("a-to-b", "b-to-a"), path, "rules.", found)
    loaded: dict[str, tuple[Rule, ...]] = {"a-to-b": (), "b-to-a": ()}
    for rules_direction in ("a-to-b", "b-to-a"):
        if rules_direction not in raw:
            continue
        if direction not in ("two-way", rules_direction):
            found.add(
                ConfigError(
                    path,
                    f"rules.{rules_direction}",
                    f"this sync only goes {direction}: rules for {rules_direction} would never "
                    "apply",
                )
            )
            continue
        with found.check():
            loaded[rules_direction] = _load_rules(raw[rules_direction], rules_direction, path)
    if found:
        raise ConfigError.of(found.errors)
    return loaded["a-to-b"], loaded["b-to-a"]


def _load_rules(items: Any, direction: str, path: Path) -> tuple[Rule, ...]:
    if not isinstance(items, list):
        raise ConfigError(path, f"rules.{direction}", f"expected [[rules.{direction}]] tables")
    rules = []
    found = Problems()
    for index, item in enumerate(items):
        key = f"rules.{direction}[{index}]"
        if not isinstance(item, dict):
            found.add(ConfigError(path, key, "expected a table with if and then"))
            continue
        check_keys(item, ("if", "then", "match"), path, f"{key}.", found)
        match = "all"
        with found.check():
            match = choice(item.get("match", "all"), ("all", "any"), path, f"{key}.match")
        conditions: list[Condition] = []
        actions: list[Action] = []
        for part in ("if", "then"):
            raw = item.get(part, [])
            if not isinstance(raw, list):
                found.add(
                    ConfigError(
                        path, f"{key}.{part}", f"expected a list of tables, got {type_name(raw)}"
                    )
                )
                continue
            for i, entry in enumerate(raw):
                with found.check():
                    if part == "if":
                        conditions.append(_load_condition(entry, path, f"{key}.if[{i}]"))
                    else:
                        actions.append(_load_action(entry, path, f"{key}.then[{i}]"))
        rules.append(Rule(tuple(conditions), tuple(actions), match))
    if found:
        raise ConfigError.of(found.errors)
    return tuple(rules)


def check_rule_targets(rules: Sequence[Rule], receiver: SideConfig, path: Path, key: str) -> None:
    """A rule's action must be able to land on the side the records go to."""
    for index, rule in enumerate(rules):
        for number, action in enumerate(rule.actions):
            target = "tags" if action.kind in ("add_tag", "remove_tag") else action.field
            if target.startswith("custom."):
                continue  # may be carried by a [[fields]] mapping
            if not writable_field(receiver.connector_class, target):
                raise ConfigError(
                    path,
                    f"{key}[{index}].then[{number}]",
                    f"{receiver.connector} has no writable {target} field for this action",
                )


def _check_rule_field(raw: Any, path: Path, key: str) -> str:
    name = string(raw, path, key)
    if not is_canonical(name) or (name.startswith("custom.") and not CUSTOM_KEY.match(name)):
        raise ConfigError(
            path,
            key,
            f"unknown field {show(name)} (canonical fields: {', '.join(CANONICAL_FIELDS)}, "
            "or custom.<key>)",
        )
    return name


def _load_condition(raw: Any, path: Path, key: str) -> Condition:
    if not isinstance(raw, dict):
        raise ConfigError(path, key, "expected { field = ..., op = ..., value = ... }")
    found = Problems()
    check_keys(raw, ("field", "op", "value"), path, f"{key}.", found)
    found.raise_any()
    if "field" not in raw:
        raise ConfigError(path, f"{key}.field", "missing")
    field_name = _check_rule_field(raw["field"], path, f"{key}.field")
    op = raw.get("op")
    if op not in OPERATORS:
        raise ConfigError(
            path, f"{key}.op", f"unknown operator {show(op)} (known: {', '.join(OPERATORS)})"
        )
    value = raw.get("value")
    if op in OPERATORS_WITHOUT_VALUE:
        if value is not None:
            raise ConfigError(path, f"{key}.value", f"operator {op} takes no value")
        return Condition(field_name, op, None)
    if value is None:
        raise ConfigError(path, f"{key}.value", f"operator {op} needs a value")
    if op == "in":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(path, f"{key}.value", "operator in needs a list of strings")
    elif not isinstance(value, str):
        raise ConfigError(path, f"{key}.value", f"expected a string, got {type_name(value)}")
    if op == "matches" and isinstance(value, str):
        check_regex(value, path, f"{key}.value")
    return Condition(field_name, op, value)


def _load_action(raw: Any, path: Path, key: str) -> Action:
    if not isinstance(raw, dict):
        raise ConfigError(
            path,
            key,
            "expected { add_tag = ... }, { remove_tag = ... } or { set = FIELD, value = ... }",
        )
    found = Problems()
    if "add_tag" in raw or "remove_tag" in raw:
        kind = "add_tag" if "add_tag" in raw else "remove_tag"
        check_keys(raw, (kind,), path, f"{key}.", found)
        found.raise_any()
        return Action(kind, "tags", tag_name(raw[kind], path, f"{key}.{kind}"))
    if "set" in raw:
        check_keys(raw, ("set", "value"), path, f"{key}.", found)
        found.raise_any()
        if "value" not in raw:
            raise ConfigError(path, f"{key}.value", "set needs a value")
        value = raw["value"]
        if isinstance(value, list):
            if not all(isinstance(v, str) for v in value):
                raise ConfigError(path, f"{key}.value", "expected a list of strings")
        elif not isinstance(value, str):
            raise ConfigError(path, f"{key}.value", "expected a string (or a list for tags)")
        target = _check_rule_field(raw["set"], path, f"{key}.set")
        if isinstance(value, list) and target != "tags":
            raise ConfigError(path, f"{key}.value", f"{target} takes a string, not a list")
        return Action("set", target, value)
    first = next(iter(raw), "")
    raise ConfigError(path, f"{key}.{first}", "unknown action (known: set, add_tag, remove_tag)")
