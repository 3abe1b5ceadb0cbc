"""The config directory: ``syncd.toml`` (daemon settings) and ``syncs/*.toml`` (one sync each).

Everything is validated at load time and every problem is reported as a :class:`ConfigError`
naming the file, the key and what is wrong. Secret references are resolved here:
``${env:NAME}`` (or Docker's ``NAME_FILE``), ``${file:PATH}`` and ``${cred:NAME}`` (systemd's
``$CREDENTIALS_DIRECTORY``). Resolved values of secret settings are registered for redaction.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syncd.connector import Connector, Setting
from syncd.contact import CANONICAL_FIELDS, is_canonical
from syncd.plugins import Plugins
from syncd.redact import register_secret

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
_REFERENCE = re.compile(r"\$\{(env|file|cred):([^}]*)\}")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class ConfigError(Exception):
    """A config problem: ``file: key: message``."""

    def __init__(self, file: Path | str | None, key: str | None, message: str) -> None:
        self.file = str(file) if file is not None else None
        self.key = key
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = [p for p in (self.file, self.key) if p]
        return ": ".join([*parts, self.message])


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


def parse_duration(value: object, file: Path, key: str) -> float:
    """``"10m"``, ``"1h30m"``, ``"45s"``, ``"1d"`` or a number of seconds."""
    if isinstance(value, bool):
        raise ConfigError(file, key, f"expected a duration such as '10m', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        pos = 0
        seconds = 0.0
        for match in _DURATION_PART.finditer(text):
            if text[pos : match.start()].strip():
                break
            seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
            pos = match.end()
        if pos == 0 or text[pos:].strip():
            raise ConfigError(
                file, key, f"expected a duration such as '30s', '10m', '1h' or '1d', got {value!r}"
            )
    else:
        raise ConfigError(file, key, f"expected a duration such as '10m', got {value!r}")
    if seconds <= 0:
        raise ConfigError(file, key, "must be longer than zero")
    return seconds


def resolve_references(value: str, file: Path, key: str) -> str:
    """Replace every ``${env:}``/``${file:}``/``${cred:}`` reference in ``value``."""

    def replace(match: re.Match[str]) -> str:
        kind, name = match.group(1), match.group(2).strip()
        if not name:
            raise ConfigError(file, key, f"empty reference {match.group(0)!r}")
        if kind == "env":
            return _from_env(name, file, key)
        if kind == "file":
            return _read_secret_file(Path(name).expanduser(), file, key, f"file {name}")
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise ConfigError(
                file,
                key,
                f"${{cred:{name}}} needs $CREDENTIALS_DIRECTORY (systemd LoadCredential=)",
            )
        return _read_secret_file(Path(directory) / name, file, key, f"credential {name}")

    return _REFERENCE.sub(replace, value)


def _from_env(name: str, file: Path, key: str) -> str:
    if name in os.environ:
        return os.environ[name]
    indirect = os.environ.get(f"{name}_FILE")
    if indirect:
        return _read_secret_file(Path(indirect), file, key, f"{name}_FILE ({indirect})")
    raise ConfigError(file, key, f"environment variable {name} is not set (nor {name}_FILE)")


def _read_secret_file(path: Path, file: Path, key: str, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except FileNotFoundError:
        raise ConfigError(file, key, f"{what}: no such file") from None
    except OSError as exc:
        raise ConfigError(file, key, f"{what}: cannot be read ({exc.strerror})") from None


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, None, f"not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(path, None, f"cannot be read ({exc.strerror})") from None


def _check_keys(table: Mapping[str, Any], allowed: Sequence[str], file: Path, prefix: str) -> None:
    for key in table:
        if key not in allowed:
            hint = ", ".join(allowed)
            raise ConfigError(file, f"{prefix}{key}", f"unknown key (expected one of: {hint})")


def _choice(value: Any, choices: Sequence[str], file: Path, key: str) -> str:
    if value not in choices:
        raise ConfigError(file, key, f"must be one of {', '.join(choices)}; got {value!r}")
    return str(value)


def _string(value: Any, file: Path, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(file, key, f"expected a string, got {type(value).__name__}")
    return value


# --- loading --------------------------------------------------------------------------------


def config_directory(option: str | Path | None) -> Path:
    if option:
        return Path(option).expanduser()
    env = os.environ.get("SYNCD_CONFIG")
    return Path(env).expanduser() if env else DEFAULT_CONFIG_DIR


def load_config(directory: Path, plugins: Plugins, state_dir: str | Path | None = None) -> Config:
    """Load and validate the whole config directory. Raises :class:`ConfigError`."""
    if not directory.is_dir():
        raise ConfigError(directory, None, "config directory does not exist")
    daemon = load_daemon_config(directory, state_dir)
    config = Config(directory, daemon)
    syncs_dir = directory / "syncs"
    if syncs_dir.is_dir():
        for path in sorted(syncs_dir.glob("*.toml")):
            sync = load_sync(path, plugins, daemon)
            config.syncs[sync.name] = sync
    return config


def load_daemon_config(directory: Path, state_dir: str | Path | None = None) -> DaemonConfig:
    path = directory / "syncd.toml"
    data = _load_toml(path) if path.exists() else {}
    _check_keys(data, ("daemon", "api", "defaults"), path, "")
    daemon = data.get("daemon", {})
    api = data.get("api", {})
    defaults = data.get("defaults", {})
    for name, table in (("daemon", daemon), ("api", api), ("defaults", defaults)):
        if not isinstance(table, dict):
            raise ConfigError(path, name, "expected a table")
    _check_keys(
        daemon, ("state_dir", "log_format", "log_level", "shutdown_deadline"), path, "daemon."
    )
    _check_keys(api, ("listen", "token"), path, "api.")
    _check_keys(defaults, ("interval", "phone_region"), path, "defaults.")

    chosen_state = (
        state_dir
        or os.environ.get("SYNCD_STATE_DIR")
        or daemon.get("state_dir")
        or DEFAULT_STATE_DIR
    )
    log_format = daemon.get("log_format")
    if log_format is not None:
        _choice(log_format, ("json", "console"), path, "daemon.log_format")
    log_level = str(daemon.get("log_level", "info")).lower()
    _choice(log_level, ("debug", "info", "warning", "error"), path, "daemon.log_level")
    token = api.get("token")
    if token is not None:
        token = resolve_references(_string(token, path, "api.token"), path, "api.token")
        register_secret(token)
    listen = _string(api.get("listen", "127.0.0.1:8765"), path, "api.listen")
    _check_listen(listen, path)
    region = _string(defaults.get("phone_region", "GB"), path, "defaults.phone_region").upper()
    return DaemonConfig(
        state_dir=Path(str(chosen_state)).expanduser(),
        log_format=log_format,
        log_level=log_level,
        api_listen=listen,
        api_token=token,
        shutdown_deadline=parse_duration(
            daemon.get("shutdown_deadline", 25), path, "daemon.shutdown_deadline"
        ),
        default_interval=parse_duration(defaults.get("interval", "10m"), path, "defaults.interval"),
        phone_region=region,
    )


def _check_listen(listen: str, path: Path) -> None:
    if listen.startswith("unix:"):
        if len(listen) <= 5:
            raise ConfigError(path, "api.listen", "unix: needs a socket path")
        return
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(path, "api.listen", f"expected HOST:PORT or unix:PATH, got {listen!r}")


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
    """Load one ``syncs/NAME.toml``."""
    daemon = daemon or DaemonConfig()
    name = path.stem
    if not SYNC_NAME.match(name):
        raise ConfigError(
            path, None, "a sync's file name must be letters, digits, '-', '_' or '.' (≤64)"
        )
    data = _load_toml(path)
    _check_keys(data, SYNC_KEYS, path, "")
    for side in ("a", "b"):
        if side not in data:
            raise ConfigError(path, side, f'missing table [{side}] (with connector = "...")')
    direction = _choice(data.get("direction", "two-way"), DIRECTIONS, path, "direction")
    a = _load_side(data["a"], "a", path, plugins)
    b = _load_side(data["b"], "b", path, plugins)
    initial = _choice(data.get("initial", "merge"), INITIAL_MODES, path, "initial")
    _check_write_only(a, b, direction, initial, path)
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(path, "enabled", "expected true or false")
    sync = SyncConfig(
        name=name,
        path=path,
        a=a,
        b=b,
        direction=direction,
        interval=parse_duration(data.get("interval", daemon.default_interval), path, "interval"),
        initial=initial,
        winner=_choice(data.get("winner", "a"), WINNERS, path, "winner"),
        deletions=_choice(data.get("deletions", "ignore"), DELETIONS, path, "deletions"),
        deletion_tag=_string(data.get("deletion_tag", "syncd-deleted"), path, "deletion_tag"),
        match=_choice(data.get("match", "email"), MATCHING, path, "match"),
        full_every=parse_duration(data.get("full_every", "1d"), path, "full_every"),
        phone_region=_string(
            data.get("phone_region", daemon.phone_region), path, "phone_region"
        ).upper(),
        enabled=enabled,
        fields=_load_fields(data.get("fields", []), a, b, path),
        rules_a_to_b=_load_rules(data.get("rules", {}), "a-to-b", path),
        rules_b_to_a=_load_rules(data.get("rules", {}), "b-to-a", path),
    )
    if sync.deletions == "archive":
        for side_name, receiver in (("a", a), ("b", b)):
            receives = direction == "two-way" or direction.endswith(side_name)
            if receives and receiver.connector_class.capabilities.archive is None:
                raise ConfigError(
                    path,
                    "deletions",
                    f"side {side_name} ({receiver.connector}) cannot archive or delete records; "
                    "use 'ignore' or 'tag'",
                )
    for secret in sync.secret_values():
        register_secret(secret)
    return sync


def _load_side(table: Any, side: str, path: Path, plugins: Plugins) -> SideConfig:
    if not isinstance(table, dict):
        raise ConfigError(path, side, "expected a table")
    connector_name = table.get("connector")
    if not isinstance(connector_name, str) or not connector_name:
        raise ConfigError(path, f"{side}.connector", 'missing (for example connector = "csv")')
    cls = plugins.connector(connector_name)
    if cls is None:
        known = ", ".join(sorted(plugins.connectors)) or "none"
        raise ConfigError(
            path,
            f"{side}.connector",
            f"unknown connector {connector_name!r} (installed: {known}; see 'syncd plugins')",
        )
    declared = {s.name: s for s in cls.settings}
    settings: dict[str, Any] = {}
    for key, value in table.items():
        if key == "connector":
            continue
        spec = declared.get(key)
        if spec is None:
            hint = ", ".join(sorted(declared)) or "none"
            raise ConfigError(
                path, f"{side}.{key}", f"unknown setting for {connector_name} (known: {hint})"
            )
        settings[key] = _setting_value(spec, value, path, f"{side}.{key}")
    for spec in cls.settings:
        if spec.name not in settings:
            if spec.required:
                raise ConfigError(
                    path, f"{side}.{spec.name}", f"required by {connector_name}: {spec.help}"
                )
            settings[spec.name] = spec.default
    return SideConfig(connector_name, settings, cls)


def _setting_value(spec: Setting, value: Any, path: Path, key: str) -> Any:
    if isinstance(value, str):
        value = resolve_references(value, path, key)
        if spec.secret:
            register_secret(value)
        if spec.type is int:
            try:
                value = int(value)
            except ValueError:
                raise ConfigError(path, key, "expected a whole number") from None
        elif spec.type is float:
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(path, key, "expected a number") from None
        elif spec.type is bool:
            lowered = value.strip().lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ConfigError(path, key, "expected true or false")
            value = lowered in ("true", "1", "yes")
        elif spec.type is list:
            value = [part.strip() for part in value.split(",") if part.strip()]
    expected: tuple[type, ...] = (spec.type,)
    if spec.type is float:
        expected = (int, float)
    if isinstance(value, bool) and spec.type is not bool:
        raise ConfigError(path, key, f"expected {spec.type.__name__}, got a boolean")
    if not isinstance(value, expected):
        raise ConfigError(path, key, f"expected {spec.type.__name__}, got {type(value).__name__}")
    if spec.choices is not None:
        values = value if isinstance(value, list) else [value]
        for item in values:
            if item not in spec.choices:
                allowed = ", ".join(str(c) for c in spec.choices)
                raise ConfigError(path, key, f"must be one of {allowed}; got {item!r}")
    return value


def _check_write_only(
    a: SideConfig, b: SideConfig, direction: str, initial: str, path: Path
) -> None:
    """Rule 9: a write-only side is never read; a read-only side is never written."""
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


def _load_fields(raw: Any, a: SideConfig, b: SideConfig, path: Path) -> tuple[FieldMapping, ...]:
    if not isinstance(raw, list):
        raise ConfigError(path, "fields", "expected [[fields]] tables")
    mappings = []
    for index, item in enumerate(raw):
        key = f"fields[{index}]"
        if not isinstance(item, dict):
            raise ConfigError(path, key, "expected a table with a, b and direction")
        _check_keys(item, ("a", "b", "direction"), path, f"{key}.")
        for side_name, side in (("a", a), ("b", b)):
            if side_name not in item:
                raise ConfigError(path, f"{key}.{side_name}", "missing field name")
            name = _string(item[side_name], path, f"{key}.{side_name}")
            if resolve_field(side.connector_class, name) is None:
                raise ConfigError(
                    path,
                    f"{key}.{side_name}",
                    f"{side.connector} has no field {name!r}",
                )
        direction = _choice(item.get("direction", "two-way"), DIRECTIONS, path, f"{key}.direction")
        mappings.append(FieldMapping(item["a"], item["b"], direction))
    return tuple(mappings)


def resolve_field(cls: type[Connector], name: str) -> str | None:
    """The connector's own field name for ``name``: an app field, a canonical field it maps, or
    a ``custom.<key>`` field when the connector takes arbitrary custom fields."""
    if cls.field_spec(name) is not None:
        return name
    for spec in cls.fields:
        if spec.canonical == name:
            return spec.name
    if name.startswith("custom.") and cls.capabilities.custom_fields:
        return name
    return None


def _load_rules(raw: Any, direction: str, path: Path) -> tuple[Rule, ...]:
    if not isinstance(raw, dict):
        raise ConfigError(path, "rules", "expected [[rules.a-to-b]] or [[rules.b-to-a]] tables")
    _check_keys(raw, ("a-to-b", "b-to-a"), path, "rules.")
    items = raw.get(direction, [])
    if not isinstance(items, list):
        raise ConfigError(path, f"rules.{direction}", "expected [[rules." + direction + "]]")
    rules = []
    for index, item in enumerate(items):
        key = f"rules.{direction}[{index}]"
        if not isinstance(item, dict):
            raise ConfigError(path, key, "expected a table with if and then")
        _check_keys(item, ("if", "then", "match"), path, f"{key}.")
        match = _choice(item.get("match", "all"), ("all", "any"), path, f"{key}.match")
        conditions = tuple(
            _load_condition(c, path, f"{key}.if[{i}]") for i, c in enumerate(item.get("if", []))
        )
        actions = tuple(
            _load_action(c, path, f"{key}.then[{i}]") for i, c in enumerate(item.get("then", []))
        )
        rules.append(Rule(conditions, actions, match))
    return tuple(rules)


def _check_rule_field(raw: Any, path: Path, key: str) -> str:
    name = _string(raw, path, key)
    if not is_canonical(name):
        raise ConfigError(
            path,
            key,
            f"unknown field {name!r} (canonical fields: {', '.join(CANONICAL_FIELDS)}, "
            "or custom.<key>)",
        )
    return name


def _load_condition(raw: Any, path: Path, key: str) -> Condition:
    if not isinstance(raw, dict):
        raise ConfigError(path, key, "expected { field = ..., op = ..., value = ... }")
    _check_keys(raw, ("field", "op", "value"), path, f"{key}.")
    if "field" not in raw:
        raise ConfigError(path, f"{key}.field", "missing")
    field_name = _check_rule_field(raw["field"], path, f"{key}.field")
    op = raw.get("op")
    if op not in OPERATORS:
        raise ConfigError(
            path, f"{key}.op", f"unknown operator {op!r} (known: {', '.join(OPERATORS)})"
        )
    value = raw.get("value")
    if op not in OPERATORS_WITHOUT_VALUE and value is None:
        raise ConfigError(path, f"{key}.value", f"operator {op} needs a value")
    if op == "in" and not isinstance(value, list):
        raise ConfigError(path, f"{key}.value", "operator in needs a list")
    if op == "matches":
        try:
            re.compile(_string(value, path, f"{key}.value"))
        except re.error as exc:
            raise ConfigError(
                path, f"{key}.value", f"not a valid regular expression: {exc}"
            ) from None
    return Condition(field_name, op, value)


def _load_action(raw: Any, path: Path, key: str) -> Action:
    if not isinstance(raw, dict):
        raise ConfigError(
            path,
            key,
            "expected { add_tag = ... }, { remove_tag = ... } or { set = FIELD, value = ... }",
        )
    if "add_tag" in raw or "remove_tag" in raw:
        kind = "add_tag" if "add_tag" in raw else "remove_tag"
        _check_keys(raw, (kind,), path, f"{key}.")
        return Action(kind, "tags", _string(raw[kind], path, f"{key}.{kind}"))
    if "set" in raw:
        _check_keys(raw, ("set", "value"), path, f"{key}.")
        if "value" not in raw:
            raise ConfigError(path, f"{key}.value", "set needs a value")
        value = raw["value"]
        if not isinstance(value, str | list):
            raise ConfigError(path, f"{key}.value", "expected a string (or a list for tags)")
        return Action("set", _check_rule_field(raw["set"], path, f"{key}.set"), value)
    first = next(iter(raw), "")
    raise ConfigError(path, f"{key}.{first}", "unknown action (known: set, add_tag, remove_tag)")
