"""The config directory: ``syncd.toml`` (daemon settings) and ``syncs/*.toml`` (one sync each).

Everything is validated at load time, and every problem found is reported as one line naming the
file, the key and what is wrong (:class:`ConfigError`; ``ConfigError.problems`` lists them all):
``syncd check`` catches what ``syncd run`` would choke on. Reading is in
:mod:`syncd.config_files` (size caps, regular files only, strict UTF-8), secret references in
:mod:`syncd.config_secrets`, bounded values in :mod:`syncd.config_values`.

Every value resolved from a ``${env:}``/``${file:}``/``${cred:}`` reference into a setting that is
not declared public, and every value of a secret setting, is registered for redaction before any
message is printed, whatever the order of the keys.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syncd.config_errors import ConfigError, Problems
from syncd.config_files import list_config_directory, load_toml
from syncd.config_secrets import Resolved, check_secret_length, resolve
from syncd.config_values import (
    FULL_EVERY,
    INTERVAL,
    LARGEST_INT,
    SHUTDOWN_DEADLINE,
    Bounds,
    check_number,
    check_phone_region,
    check_regex,
)
from syncd.config_values import parse_duration as _parse_duration
from syncd.connector import Connector, Setting, SettingContext
from syncd.contact import CANONICAL_FIELDS, is_canonical
from syncd.plugins import Plugins
from syncd.redact import register_secret

__all__ = [
    "Action",
    "Condition",
    "Config",
    "ConfigError",
    "DaemonConfig",
    "FieldMapping",
    "Rule",
    "SideConfig",
    "SyncConfig",
    "config_directory",
    "load_config",
    "load_daemon_config",
    "load_sync",
    "parse_duration",
    "resolve_field",
    "resolve_references",
]

DEFAULT_CONFIG_DIR = Path("/etc/syncd")
DEFAULT_STATE_DIR = Path("/var/lib/syncd")

DIRECTIONS = ("two-way", "a-to-b", "b-to-a")
INITIAL_MODES = ("new-only", "merge", "a-into-b", "b-into-a")
WINNERS = ("a", "b", "newest")
DELETIONS = ("ignore", "tag", "archive")
MATCHING = ("email", "email+phone")
OPERATORS = ("equals", "not_equals", "contains", "is_set", "is_empty", "in", "matches")
OPERATORS_WITHOUT_VALUE = ("is_set", "is_empty")
SYNC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_CUSTOM_KEY = re.compile(r"^custom\.[A-Za-z0-9_][A-Za-z0-9_ .-]{0,99}$")


# --- the parsed objects ---------------------------------------------------------------------


@dataclass(frozen=True)
class SideConfig:
    connector: str
    settings: dict[str, Any]
    connector_class: type[Connector]


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


@dataclass(frozen=True)
class SyncConfig:
    name: str
    path: Path
    a: SideConfig
    b: SideConfig
    direction: str = "two-way"
    interval: float = 600.0
    initial: str = "merge"
    winner: str = "a"
    deletions: str = "ignore"
    deletion_tag: str = "syncd-deleted"
    match: str = "email"
    full_every: float = 86400.0
    phone_region: str = "GB"
    enabled: bool = True
    fields: tuple[FieldMapping, ...] = ()
    rules_a_to_b: tuple[Rule, ...] = ()
    rules_b_to_a: tuple[Rule, ...] = ()

    def side(self, name: str) -> SideConfig:
        return self.a if name == "a" else self.b

    def secret_values(self) -> list[str]:
        values = []
        for side in (self.a, self.b):
            for key in side.connector_class.secret_settings():
                value = side.settings.get(key)
                if isinstance(value, str) and value:
                    values.append(value)
        return values


@dataclass(frozen=True)
class DaemonConfig:
    state_dir: Path = DEFAULT_STATE_DIR
    log_format: str | None = None
    log_level: str = "info"
    api_listen: str = "127.0.0.1:8765"
    api_token: str | None = None
    shutdown_deadline: float = 25.0
    default_interval: float = 600.0
    phone_region: str = "GB"


@dataclass
class Config:
    directory: Path
    daemon: DaemonConfig
    syncs: dict[str, SyncConfig] = field(default_factory=dict)

    def sync(self, name: str) -> SyncConfig:
        try:
            return self.syncs[name]
        except KeyError:
            known = ", ".join(sorted(self.syncs)) or "none"
            raise ConfigError(
                self.directory / "syncs", None, f"no sync named {name!r} (configured: {known})"
            ) from None


# --- helpers --------------------------------------------------------------------------------


def parse_duration(value: object, file: Path, key: str, bounds: Bounds | None = None) -> float:
    """``"10m"``, ``"1h30m"``, ``"45s"``, ``"1d"`` or a number of seconds (see
    :func:`syncd.config_values.parse_duration`)."""
    return _parse_duration(value, file, key, bounds)


def resolve_references(value: str, file: Path, key: str) -> str:
    """Replace every ``${env:}``/``${file:}``/``${cred:}`` reference in ``value``."""
    return resolve(value, file, key).value


def _check_keys(
    table: Mapping[str, Any], allowed: Sequence[str], file: Path, prefix: str, problems: Problems
) -> None:
    for key in table:
        if key not in allowed:
            hint = ", ".join(allowed)
            problems.add(
                ConfigError(file, f"{prefix}{key}", f"unknown key (expected one of: {hint})")
            )


def _choice(value: Any, choices: Sequence[str], file: Path, key: str) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(file, key, f"must be one of {', '.join(choices)}; got {_show(value)}")
    return value


def _string(value: Any, file: Path, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(file, key, f"expected a string, got {_type_name(value)}")
    return value


def _table(value: Any, file: Path, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(file, key, f"expected a table, got {_type_name(value)}")
    return value


def _type_name(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    """A value for a message: short, and never a whole nested structure."""
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:60] + "…")
    if isinstance(value, bool | float):
        return repr(value)
    if isinstance(value, int):
        text = str(value)
        return text if len(text) <= 20 else f"a number of {len(text)} digits"
    return _type_name(value)


# --- loading --------------------------------------------------------------------------------


def config_directory(option: str | Path | None) -> Path:
    if option:
        return Path(option).expanduser()
    env = os.environ.get("SYNCD_CONFIG")
    return Path(env).expanduser() if env else DEFAULT_CONFIG_DIR


def load_config(directory: Path, plugins: Plugins, state_dir: str | Path | None = None) -> Config:
    """Load and validate the whole config directory. Raises :class:`ConfigError` holding every
    problem found (``.problems``)."""
    listing = list_config_directory(directory)
    problems = Problems()
    for problem in listing.problems:
        problems.add(problem)
    daemon = DaemonConfig()
    with problems.check():
        daemon = load_daemon_config(directory, state_dir)
    config = Config(directory, daemon)
    for path in listing.sync_files:
        with problems.check():
            sync = load_sync(path, plugins, daemon)
            config.syncs[sync.name] = sync
    problems.raise_any()
    return config


def load_daemon_config(directory: Path, state_dir: str | Path | None = None) -> DaemonConfig:
    path = directory / "syncd.toml"
    data = load_toml(path) if os.path.lexists(path) else {}
    problems = Problems()
    _check_keys(data, ("daemon", "api", "defaults"), path, "", problems)
    tables: dict[str, dict[str, Any]] = {}
    for name in ("daemon", "api", "defaults"):
        tables[name] = {}
        with problems.check():
            tables[name] = _table(data.get(name, {}), path, name)
    daemon, api, defaults = tables["daemon"], tables["api"], tables["defaults"]
    _check_keys(
        daemon,
        ("state_dir", "log_format", "log_level", "shutdown_deadline"),
        path,
        "daemon.",
        problems,
    )
    _check_keys(api, ("listen", "token"), path, "api.", problems)
    _check_keys(defaults, ("interval", "phone_region"), path, "defaults.", problems)
    result = DaemonConfig()
    values: dict[str, Any] = {}

    def take(name: str, fn: Any) -> None:
        with problems.check():
            values[name] = fn()

    take("api_token", lambda: _api_token(api.get("token"), path))
    if "state_dir" in daemon:
        take("state_dir", lambda: Path(_string(daemon["state_dir"], path, "daemon.state_dir")))
    chosen_state = state_dir or os.environ.get("SYNCD_STATE_DIR")
    if chosen_state:
        values["state_dir"] = Path(str(chosen_state))
    if "log_format" in daemon:
        take(
            "log_format",
            lambda: _choice(daemon["log_format"], ("json", "console"), path, "daemon.log_format"),
        )
    if "log_level" in daemon:
        take(
            "log_level",
            lambda: _choice(
                _string(daemon["log_level"], path, "daemon.log_level").lower(),
                ("debug", "info", "warning", "error"),
                path,
                "daemon.log_level",
            ),
        )
    if "listen" in api:
        take("api_listen", lambda: _check_listen(_string(api["listen"], path, "api.listen"), path))
    if "shutdown_deadline" in daemon:
        take(
            "shutdown_deadline",
            lambda: parse_duration(
                daemon["shutdown_deadline"], path, "daemon.shutdown_deadline", SHUTDOWN_DEADLINE
            ),
        )
    if "interval" in defaults:
        take(
            "default_interval",
            lambda: parse_duration(defaults["interval"], path, "defaults.interval", INTERVAL),
        )
    if "phone_region" in defaults:
        take(
            "phone_region",
            lambda: check_phone_region(defaults["phone_region"], path, "defaults.phone_region"),
        )
    problems.raise_any()
    if "state_dir" in values:
        values["state_dir"] = values["state_dir"].expanduser()
    return DaemonConfig(**{**result.__dict__, **values})


def _api_token(raw: Any, path: Path) -> str | None:
    if raw is None:
        return None
    key = "api.token"
    resolved = resolve(_string(raw, path, key), path, key)
    _register(resolved, path, key, always=True)
    return resolved.value


def _register(resolved: Resolved, path: Path, key: str, always: bool) -> None:
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
    for value, source in secrets:
        check_secret_length(value, path, key, source)


def _check_listen(listen: str, path: Path) -> str:
    if listen.startswith("unix:"):
        if len(listen) <= 5:
            raise ConfigError(path, "api.listen", "unix: needs a socket path")
        return listen
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isascii() or not port.isdigit() or len(port) > 5:
        raise ConfigError(
            path, "api.listen", f"expected HOST:PORT or unix:PATH, got {_show(listen)}"
        )
    if not 0 < int(port) < 65536:
        raise ConfigError(
            path, "api.listen", f"expected HOST:PORT or unix:PATH, got {_show(listen)}"
        )
    return listen


SYNC_KEYS = (
    "direction",
    "interval",
    "initial",
    "winner",
    "deletions",
    "deletion_tag",
    "match",
    "full_every",
    "phone_region",
    "enabled",
    "a",
    "b",
    "fields",
    "rules",
)


def load_sync(path: Path, plugins: Plugins, daemon: DaemonConfig | None = None) -> SyncConfig:
    """Load one ``syncs/NAME.toml``. Raises :class:`ConfigError` holding every problem found."""
    daemon = daemon or DaemonConfig()
    name = path.stem
    if not SYNC_NAME.match(name):
        raise ConfigError(
            path, None, "a sync's file name must be letters, digits, '-', '_' or '.' (≤64)"
        )
    data = load_toml(path)
    problems = Problems()
    _check_keys(data, SYNC_KEYS, path, "", problems)
    values: dict[str, Any] = {}

    def take(key: str, fn: Any) -> None:
        with problems.check():
            values[key] = fn()

    # the sides first: every secret is registered before a message that could quote one is made
    sides: dict[str, SideConfig | None] = {}
    for side in ("a", "b"):
        sides[side] = None
        if side not in data:
            problems.add(
                ConfigError(path, side, f'missing table [{side}] (with connector = "...")')
            )
            continue
        sides[side] = _load_side(data[side], side, path, plugins, problems)
    take(
        "direction",
        lambda: _choice(data.get("direction", "two-way"), DIRECTIONS, path, "direction"),
    )
    take("initial", lambda: _choice(data.get("initial", "merge"), INITIAL_MODES, path, "initial"))
    take(
        "interval",
        lambda: parse_duration(
            data.get("interval", daemon.default_interval), path, "interval", INTERVAL
        ),
    )
    take("winner", lambda: _choice(data.get("winner", "a"), WINNERS, path, "winner"))
    take(
        "deletions", lambda: _choice(data.get("deletions", "ignore"), DELETIONS, path, "deletions")
    )
    take(
        "deletion_tag",
        lambda: _tag(data.get("deletion_tag", "syncd-deleted"), path, "deletion_tag"),
    )
    take("match", lambda: _choice(data.get("match", "email"), MATCHING, path, "match"))
    take(
        "full_every",
        lambda: parse_duration(data.get("full_every", "1d"), path, "full_every", FULL_EVERY),
    )
    take(
        "phone_region",
        lambda: check_phone_region(
            data.get("phone_region", daemon.phone_region), path, "phone_region"
        ),
    )
    take("enabled", lambda: _boolean(data.get("enabled", True), path, "enabled"))
    direction = values.get("direction", "two-way")
    a, b = sides["a"], sides["b"]
    take("rules", lambda: _load_all_rules(data.get("rules", {}), direction, path, problems))
    if a is not None and b is not None:
        take(
            "fields", lambda: _load_fields(data.get("fields", []), a, b, direction, path, problems)
        )
        if "initial" in values and "direction" in values:
            with problems.check():
                _check_write_only(a, b, direction, values["initial"], path)
        with problems.check():
            _check_same_data(a, b, path)
        if "deletions" in values and "direction" in values:
            with problems.check():
                _check_deletions(a, b, direction, values["deletions"], path)
        if "rules" in values:
            rules_ab, rules_ba = values["rules"]
            for rules, receiver, rules_key in ((rules_ab, b, "a-to-b"), (rules_ba, a, "b-to-a")):
                with problems.check():
                    _check_rule_targets(rules, receiver, path, f"rules.{rules_key}")
    problems.raise_any()
    assert a is not None and b is not None  # otherwise a problem was raised
    rules_a_to_b, rules_b_to_a = values["rules"]
    return SyncConfig(
        name=name,
        path=path,
        a=a,
        b=b,
        direction=values["direction"],
        interval=values["interval"],
        initial=values["initial"],
        winner=values["winner"],
        deletions=values["deletions"],
        deletion_tag=values["deletion_tag"],
        match=values["match"],
        full_every=values["full_every"],
        phone_region=values["phone_region"],
        enabled=values["enabled"],
        fields=values["fields"],
        rules_a_to_b=rules_a_to_b,
        rules_b_to_a=rules_b_to_a,
    )


def _boolean(value: Any, path: Path, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(path, key, f"expected true or false, got {_show(value)}")
    return value


def _tag(value: Any, path: Path, key: str) -> str:
    text = _string(value, path, key).strip()
    if not text:
        raise ConfigError(path, key, "may not be empty")
    if len(text) > 100:
        raise ConfigError(path, key, "a tag may be 100 characters at most")
    return text


def _receives(side: str, direction: str) -> bool:
    return direction == "two-way" or direction.endswith(f"to-{side}")


def _check_deletions(
    a: SideConfig, b: SideConfig, direction: str, deletions: str, path: Path
) -> None:
    for side_name, receiver in (("a", a), ("b", b)):
        if not _receives(side_name, direction):
            continue
        if deletions == "archive" and receiver.connector_class.capabilities.archive is None:
            raise ConfigError(
                path,
                "deletions",
                f"side {side_name} ({receiver.connector}) cannot archive or delete records; "
                "use 'ignore' or 'tag'",
            )
        if deletions == "tag" and not _writable_field(receiver.connector_class, "tags"):
            raise ConfigError(
                path,
                "deletions",
                f"side {side_name} ({receiver.connector}) has no tags field to tag records in; "
                "use 'ignore'"
                + (
                    "" if receiver.connector_class.capabilities.archive is None else " or 'archive'"
                ),
            )


def _writable_field(cls: type[Connector], canonical: str) -> bool:
    name = resolve_field(cls, canonical)
    if name is None:
        return False
    spec = cls.field_spec(name)
    return spec is None or not spec.read_only


def _check_same_data(a: SideConfig, b: SideConfig, path: Path) -> None:
    """Two sides on one file are one list synced with itself."""
    config_dir = path.parent.parent
    files: dict[str, tuple[str, str]] = {}
    for side_name, side in (("a", a), ("b", b)):
        for spec in side.connector_class.settings:
            value = side.settings.get(spec.name)
            if not spec.path or not isinstance(value, str) or not value:
                continue
            where = os.path.realpath(SettingContext(side.settings, config_dir).path(value))
            if where in files and files[where][0] != side_name:
                other_side, other_key = files[where]
                raise ConfigError(
                    path,
                    f"{side_name}.{spec.name}",
                    f"is the same file as {other_side}.{other_key}: a sync needs two different "
                    "lists",
                )
            files[where] = (side_name, spec.name)


def _load_side(
    table: Any, side: str, path: Path, plugins: Plugins, problems: Problems
) -> SideConfig | None:
    if not isinstance(table, dict):
        problems.add(ConfigError(path, side, f"expected a table, got {_type_name(table)}"))
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
                f"unknown connector {_show(connector_name)} (installed: {known}; "
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
                    _register(reference, path, f"{side}.{key}", always=spec.secret)
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
        else _show(value)
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
        raise ConfigError(path, key, f"expected {_type_word(spec.type)}, got {_type_name(value)}")
    if isinstance(value, list) and not all(isinstance(item, str) for item in value):
        raise ConfigError(path, key, "expected a list of strings")
    check_number(value, path, key)
    if spec.choices is not None:
        items = value if isinstance(value, list) else [value]
        for item in items:
            if item not in spec.choices:
                allowed = ", ".join(str(c) for c in spec.choices)
                got = shown if reference is not None and reference.references else _show(item)
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


def _check_write_only(
    a: SideConfig, b: SideConfig, direction: str, initial: str, path: Path
) -> None:
    """Rule 9: a write-only side is never read; a read-only side is never written. And the first
    merge may not go against the sync's direction."""
    if direction != "two-way" and initial in ("a-into-b", "b-into-a"):
        source = initial.split("-", 1)[0]
        if not direction.startswith(source):
            raise ConfigError(
                path,
                "initial",
                f'{initial} goes against direction = "{direction}"; use "merge", "new-only" or '
                f'"{direction.replace("-to-", "-into-")}"',
            )
    for name, side, other in (("a", a, "b"), ("b", b, "a")):
        caps = side.connector_class.capabilities
        if not caps.read and direction in ("two-way", f"{name}-to-{other}"):
            raise ConfigError(
                path,
                "direction",
                f"side {name} ({side.connector}) is write-only and cannot be read; "
                f'use direction = "{other}-to-{name}"',
            )
        if not caps.read and initial == f"{name}-into-{other}":
            raise ConfigError(
                path,
                "initial",
                f"side {name} ({side.connector}) is write-only and cannot be the source of "
                "the first merge",
            )
        if not caps.write and direction in ("two-way", f"{other}-to-{name}"):
            raise ConfigError(
                path,
                "direction",
                f"side {name} ({side.connector}) is read-only and cannot be written; "
                f'use direction = "{name}-to-{other}"',
            )


def _load_fields(
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
        _check_keys(item, ("a", "b", "direction"), path, f"{key}.", found)
        names: dict[str, str] = {}
        for side_name, side in (("a", a), ("b", b)):
            with found.check():
                if side_name not in item:
                    raise ConfigError(path, f"{key}.{side_name}", "missing field name")
                name = _string(item[side_name], path, f"{key}.{side_name}")
                if name.startswith("custom.") and not _CUSTOM_KEY.match(name):
                    raise ConfigError(
                        path,
                        f"{key}.{side_name}",
                        f"{_show(name)} is not a custom field name (custom.<key>, the key "
                        "letters, digits, '_', '-', '.' or spaces)",
                    )
                resolved = resolve_field(side.connector_class, name)
                if resolved is None:
                    raise ConfigError(
                        path, f"{key}.{side_name}", f"{side.connector} has no field {_show(name)}"
                    )
                if (side_name, resolved) in used:
                    raise ConfigError(
                        path,
                        f"{key}.{side_name}",
                        f"{_show(name)} is already mapped by {used[(side_name, resolved)]}",
                    )
                used[(side_name, resolved)] = key
                names[side_name] = name
        with found.check():
            mapping_direction = _choice(
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
    if name.startswith("custom.") and cls.capabilities.custom_fields and _CUSTOM_KEY.match(name):
        return name
    return None


def _load_all_rules(
    raw: Any, direction: str, path: Path, problems: Problems
) -> tuple[tuple[Rule, ...], tuple[Rule, ...]]:
    if not isinstance(raw, dict):
        raise ConfigError(path, "rules", "expected [[rules.a-to-b]] or [[rules.b-to-a]] tables")
    found = Problems()
    _check_keys(raw, ("a-to-b", "b-to-a"), path, "rules.", found)
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
        _check_keys(item, ("if", "then", "match"), path, f"{key}.", found)
        match = "all"
        with found.check():
            match = _choice(item.get("match", "all"), ("all", "any"), path, f"{key}.match")
        conditions: list[Condition] = []
        actions: list[Action] = []
        for part in ("if", "then"):
            raw = item.get(part, [])
            if not isinstance(raw, list):
                found.add(
                    ConfigError(
                        path, f"{key}.{part}", f"expected a list of tables, got {_type_name(raw)}"
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


def _check_rule_targets(rules: Sequence[Rule], receiver: SideConfig, path: Path, key: str) -> None:
    """A rule's action must be able to land on the side the records go to."""
    for index, rule in enumerate(rules):
        for number, action in enumerate(rule.actions):
            target = "tags" if action.kind in ("add_tag", "remove_tag") else action.field
            if target.startswith("custom."):
                continue  # may be carried by a [[fields]] mapping
            if not _writable_field(receiver.connector_class, target):
                raise ConfigError(
                    path,
                    f"{key}[{index}].then[{number}]",
                    f"{receiver.connector} has no writable {target} field for this action",
                )


def _check_rule_field(raw: Any, path: Path, key: str) -> str:
    name = _string(raw, path, key)
    if not is_canonical(name) or (name.startswith("custom.") and not _CUSTOM_KEY.match(name)):
        raise ConfigError(
            path,
            key,
            f"unknown field {_show(name)} (canonical fields: {', '.join(CANONICAL_FIELDS)}, "
            "or custom.<key>)",
        )
    return name


def _load_condition(raw: Any, path: Path, key: str) -> Condition:
    if not isinstance(raw, dict):
        raise ConfigError(path, key, "expected { field = ..., op = ..., value = ... }")
    found = Problems()
    _check_keys(raw, ("field", "op", "value"), path, f"{key}.", found)
    found.raise_any()
    if "field" not in raw:
        raise ConfigError(path, f"{key}.field", "missing")
    field_name = _check_rule_field(raw["field"], path, f"{key}.field")
    op = raw.get("op")
    if op not in OPERATORS:
        raise ConfigError(
            path, f"{key}.op", f"unknown operator {_show(op)} (known: {', '.join(OPERATORS)})"
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
        raise ConfigError(path, f"{key}.value", f"expected a string, got {_type_name(value)}")
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
        _check_keys(raw, (kind,), path, f"{key}.", found)
        found.raise_any()
        return Action(kind, "tags", _tag(raw[kind], path, f"{key}.{kind}"))
    if "set" in raw:
        _check_keys(raw, ("set", "value"), path, f"{key}.", found)
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
