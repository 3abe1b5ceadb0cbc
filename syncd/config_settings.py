"""A side's connector settings: references resolved (and their secrets registered) before
anything is checked, then each value converted and checked against its :class:`Setting`
declaration (type, choices, range, path, validator)."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syncd.config_errors import ConfigError, Problems
from syncd.config_secrets import Resolved, check_secret_length, resolve
from syncd.config_values import LARGEST_INT, check_number, show, type_name
from syncd.connector import Connector, Setting, SettingContext
from syncd.plugins import Plugins
from syncd.redact import register_secret


@dataclass(frozen=True)
class SideConfig:
    connector: str
    settings: dict[str, Any]
    connector_class: type[Connector]


def register_resolved(resolved: Resolved, path: Path, key: str, always: bool) -> None:
    """Register what is secret in ``resolved`` (all of it when ``always``, else what came from
    references); refuse what is too short to redact."""
    secrets: list[tuple[str, str]] = []
    if always:
        source = "the value of " + resolved.references[0] if resolved.references else "the value"
        if len(resolved.references) > 1:
            source = "the value"
        secrets.append((resolved.value, source))
    for reference, part in zip(resolved.references, resolved.parts, strict=True):
        secrets.append((part, f"the value of {reference}"))
    for value, _ in secrets:
        register_secret(value)
    hint = (
        ""
        if always
        else " (a reference into a setting its connector does not declare public is treated "
        "as a secret; write the value itself if it is not one)"
    )
    for value, source in secrets:
        check_secret_length(value, path, key, source, hint)


def load_side(
    table: Any, side: str, path: Path, plugins: Plugins, problems: Problems
) -> SideConfig | None:
    if not isinstance(table, dict):
        problems.add(ConfigError(path, side, f"expected a table, got {type_name(table)}"))
        return None
    connector_name = table.get("connector")
    if not isinstance(connector_name, str) or not connector_name:
        problems.add(
            ConfigError(path, f"{side}.connector", 'missing (for example connector = "csv")')
        )
        return None
    cls = plugins.connector(connector_name)
    if cls is None:
        known = ", ".join(sorted(plugins.connectors)) or "none"
        problems.add(
            ConfigError(
                path,
                f"{side}.connector",
                f"unknown connector {show(connector_name)} (installed: {known}; "
                "see 'syncd plugins')",
            )
        )
        return None
    declared = {s.name: s for s in cls.settings}
    found = Problems()
    # references first, all of them: their secrets are registered before any check can fail
    resolved: dict[str, tuple[Setting, Any, Resolved | None]] = {}
    for key, value in table.items():
        if key == "connector":
            continue
        spec = declared.get(key)
        if spec is None:
            hint = ", ".join(sorted(declared)) or "none"
            found.add(
                ConfigError(
                    path, f"{side}.{key}", f"unknown setting for {connector_name} (known: {hint})"
                )
            )
            continue
        with found.check():
            reference = None
            if isinstance(value, str):
                reference = resolve(value, path, f"{side}.{key}")
                if spec.secret or (reference.references and spec.may_hold_secret):
                    register_resolved(reference, path, f"{side}.{key}", always=spec.secret)
            resolved[key] = (spec, value, reference)
    settings: dict[str, Any] = {}
    for key, (spec, value, reference) in resolved.items():
        with found.check():
            settings[key] = _setting_value(spec, value, reference, path, f"{side}.{key}")
    for spec in cls.settings:
        if spec.name not in settings and spec.name not in resolved:
            if spec.required:
                found.add(
                    ConfigError(
                        path, f"{side}.{spec.name}", f"required by {connector_name}: {spec.help}"
                    )
                )
            settings[spec.name] = spec.default
    context = SettingContext(dict(settings), path.parent.parent)
    for spec in cls.settings:
        if spec.name not in settings:  # refused above
            continue
        with found.check():
            _validate(spec, settings[spec.name], context, path, f"{side}.{spec.name}")
    for error in found.errors:
        problems.add(error)
    if found:
        return None
    return SideConfig(connector_name, settings, cls)


def _setting_value(
    spec: Setting, value: Any, reference: Resolved | None, path: Path, key: str
) -> Any:
    """``value`` converted to the setting's type and checked against its declaration. A value
    that came from a reference is never quoted in a message."""
    shown = (
        f"the value of {reference.references[0]}"
        if reference is not None and reference.references
        else show(value)
    )
    if reference is not None:
        value = reference.value
        if spec.type is int:
            text = value.strip()
            if len(text.lstrip("+-")) > 20 or not text.lstrip("+-").isdigit() or not text.isascii():
                raise ConfigError(path, key, f"expected a whole number, got {shown}")
            value = int(text)
        elif spec.type is float:
            try:
                value = float(value.strip()) if len(value) <= 40 else None
            except ValueError:
                value = None
            if value is None:
                raise ConfigError(path, key, f"expected a number, got {shown}")
        elif spec.type is bool:
            lowered = value.strip().lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ConfigError(path, key, f"expected true or false, got {shown}")
            value = lowered in ("true", "1", "yes")
        elif spec.type is list:
            value = [part.strip() for part in value.split(",") if part.strip()]
    expected: tuple[type, ...] = (spec.type,)
    if spec.type is float:
        expected = (int, float)
    if isinstance(value, bool) and spec.type is not bool:
        raise ConfigError(path, key, f"expected {_type_word(spec.type)}, got a boolean")
    if not isinstance(value, expected):
        raise ConfigError(path, key, f"expected {_type_word(spec.type)}, got {type_name(value)}")
    if isinstance(value, list) and not all(isinstance(item, str) for item in value):
        raise ConfigError(path, key, "expected a list of strings")
    check_number(value, path, key)
    if spec.choices is not None:
        items = value if isinstance(value, list) else [value]
        for item in items:
            if item not in spec.choices:
                allowed = ", ".join(str(c) for c in spec.choices)
                got = shown if reference is not None and reference.references else show(item)
                raise ConfigError(path, key, f"must be one of {allowed}; got {got}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if spec.minimum is not None and value < spec.minimum:
            raise ConfigError(path, key, f"must be at least {_number(spec.minimum)}, got {shown}")
        if spec.maximum is not None and value > spec.maximum:
            raise ConfigError(path, key, f"must be at most {_number(spec.maximum)}, got {shown}")
    return value


def _type_word(kind: type) -> str:
    return {
        str: "a string",
        int: "a whole number",
        float: "a number",
        bool: "true or false",
        list: "a list",
    }.get(kind, kind.__name__)


def _number(value: float) -> str:
    return (
        str(int(value)) if float(value).is_integer() and abs(value) <= LARGEST_INT else str(value)
    )


def _validate(spec: Setting, value: Any, context: SettingContext, path: Path, key: str) -> None:
    if spec.path and value is not None:
        _check_path(value, context, path, key)
    if spec.validator is not None:
        try:
            problem = spec.validator(value, context)
        except Exception as exc:  # a connector's own check: its bug is still one line
            problem = f"could not be checked ({type(exc).__name__})"
        if problem:
            raise ConfigError(path, key, problem)


def _check_path(value: Any, context: SettingContext, path: Path, key: str) -> None:
    text = str(value)
    if not text.strip():
        raise ConfigError(path, key, "may not be empty")
    if "\0" in text:
        raise ConfigError(path, key, "may not contain a NUL character")
    try:
        target = context.path(text)
    except RuntimeError:
        raise ConfigError(path, key, f"cannot expand {text.split('/', 1)[0]!r}") from None
    try:
        info = target.stat()
    except (FileNotFoundError, NotADirectoryError):
        if os.path.islink(target):
            raise ConfigError(path, key, f"{target} is a broken symbolic link") from None
        parent = target.parent
        while not os.path.lexists(parent) and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise ConfigError(path, key, f"{target}: {parent} is not a directory") from None
        return  # created on the first write
    except OSError as exc:
        raise ConfigError(path, key, f"{target}: {exc.strerror or type(exc).__name__}") from None
    if stat.S_ISDIR(info.st_mode):
        raise ConfigError(path, key, f"{target} is a directory; name a file in it")
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(path, key, f"{target} is not a regular file (a FIFO or a device)")


# --- history and review (issue 15) -----------------------------------------------------------

#: how long the change journal is kept by default, in days (0: off)
HISTORY_DAYS_DEFAULT = 90
#: the longest retention (about ten years)
HISTORY_DAYS_MAX = 3650
ON_MASS_DELETION = ("stop", "review")


#: ``[daemon] max_concurrent_runs``: a sanity ceiling, not a recommendation
MAX_CONCURRENT_RUNS_MAX = 10000


def max_concurrent_runs(value: Any, path: Path, key: str) -> int:
    """``[daemon] max_concurrent_runs``: a whole number of runs, 0 (no cap) or more."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(path, key, f"expected a whole number of runs, got {type_name(value)}")
    if not 0 <= value <= MAX_CONCURRENT_RUNS_MAX:
        raise ConfigError(
            path, key, f"must be from 0 (no cap) to {MAX_CONCURRENT_RUNS_MAX}, got {value}"
        )
    return value


def history_days(value: Any, path: Path, key: str) -> int:
    """``history_days``: a whole number of days from 0 (the journal off) to ten years."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(path, key, f"expected a whole number of days, got {type_name(value)}")
    if not 0 <= value <= HISTORY_DAYS_MAX:
        raise ConfigError(path, key, f"must be from 0 (off) to {HISTORY_DAYS_MAX}, got {value}")
    return value
