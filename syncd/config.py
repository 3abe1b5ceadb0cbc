"""The config directory: ``syncd.toml`` (daemon settings) and ``syncs/*.toml`` (one sync each).

Everything is validated at load time, and every problem found is reported as one line naming the
file, the key and what is wrong (:class:`ConfigError`; ``ConfigError.problems`` lists them all):
``syncd check`` catches what ``syncd run`` would choke on. Reading is in
:mod:`syncd.config_files` (size caps, regular files only, strict UTF-8), secret references in
:mod:`syncd.config_secrets`, bounded values in :mod:`syncd.config_values`, connector settings in
:mod:`syncd.config_settings`, field mappings and rules in :mod:`syncd.config_rules`.

Every value resolved from a ``${env:}``/``${file:}``/``${cred:}`` reference into a setting that is
not declared public, and every value of a secret setting, is registered for redaction before any
message is printed, whatever the order of the keys.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syncd.config_console import CONSOLE_KEYS, DEFAULT_SESSION_LIFETIME, console_settings
from syncd.config_errors import ConfigError, Problems
from syncd.config_files import list_config_directory, load_toml
from syncd.config_hooks import check_interval_budget, load_hooks
from syncd.config_rules import (
    DIRECTIONS,
    Action,
    Condition,
    FieldMapping,
    Rule,
    check_rule_targets,
    load_all_rules,
    load_fields,
    resolve_field,
    tag_name,
    writable_field,
)
from syncd.config_secrets import resolve
from syncd.config_settings import (
    HISTORY_DAYS_DEFAULT,
    ON_MASS_DELETION,
    SideConfig,
    history_days,
    load_side,
    max_concurrent_runs,
    register_resolved,
)
from syncd.config_values import (
    FULL_EVERY,
    INTERVAL,
    SHUTDOWN_DEADLINE,
    Bounds,
    check_keys,
    check_phone_region,
    choice,
    show,
    string,
    table,
)
from syncd.config_values import parse_duration as _parse_duration
from syncd.connector import SettingContext
from syncd.plugins import Plugins
from syncd.store.config import load_store_settings
from syncd.store.engines import StoreSettings
from syncd.store.tokens import missing_key

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

INITIAL_MODES = ("new-only", "merge", "a-into-b", "b-into-a")
WINNERS = ("a", "b", "newest")
DELETIONS = ("ignore", "tag", "archive", "review")
MATCHING = ("email", "email+phone")
SYNC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


# --- the parsed objects ---------------------------------------------------------------------


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
    #: days the change journal is kept (0: off); what a mass deletion does (issue 15)
    history_days: int = HISTORY_DAYS_DEFAULT
    on_mass_deletion: str = "stop"

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
    #: the console's settings (syncd/config_console.py)
    api_base_path: str = ""
    api_trust_proxy: bool = False
    session_lifetime: float = DEFAULT_SESSION_LIFETIME
    shutdown_deadline: float = 25.0
    #: ``[daemon] max_concurrent_runs``: at most this many scheduled runs at once (0: no cap)
    max_concurrent_runs: int = 0
    default_interval: float = 600.0
    phone_region: str = "GB"
    #: ``[store]``: SQLite in state_dir (default) or PostgreSQL shared by several daemons
    store: StoreSettings = field(default_factory=StoreSettings)
    #: ``[hooks] listen``: a second listener serving only the webhook paths
    hooks_listen: str | None = None
    #: ``[hooks] debounce``: how long events are gathered before the run they trigger
    hooks_debounce: float = 2.0
    history_days: int = HISTORY_DAYS_DEFAULT


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
    keyless = missing_key(config)
    if keyless is not None:
        problems.add(ConfigError(directory / "syncd.toml", "store.token_key", keyless))
    problems.raise_any()
    return config


def load_daemon_config(directory: Path, state_dir: str | Path | None = None) -> DaemonConfig:
    path = directory / "syncd.toml"
    data = load_toml(path) if os.path.lexists(path) else {}
    problems = Problems()
    check_keys(data, ("daemon", "api", "defaults", "hooks", "store"), path, "", problems)
    tables: dict[str, dict[str, Any]] = {}
    for name in ("daemon", "api", "defaults", "hooks"):
        tables[name] = {}
        with problems.check():
            tables[name] = table(data.get(name, {}), path, name)
    daemon, api, defaults = tables["daemon"], tables["api"], tables["defaults"]
    check_keys(
        daemon,
        ("state_dir", "log_format", "log_level", "shutdown_deadline", "max_concurrent_runs"),
        path,
        "daemon.",
        problems,
    )
    check_keys(api, ("listen", "token", *CONSOLE_KEYS), path, "api.", problems)
    check_keys(defaults, ("interval", "phone_region", "history_days"), path, "defaults.", problems)
    result = DaemonConfig()
    values: dict[str, Any] = load_hooks(tables["hooks"], path, problems)

    def take(name: str, fn: Any) -> None:
        with problems.check():
            values[name] = fn()

    take("api_token", lambda: _api_token(api.get("token"), path))
    with problems.check():
        values.update(console_settings(api, path))
    if "state_dir" in daemon:
        take("state_dir", lambda: Path(string(daemon["state_dir"], path, "daemon.state_dir")))
    chosen_state = state_dir or os.environ.get("SYNCD_STATE_DIR")
    if chosen_state:
        values["state_dir"] = Path(str(chosen_state))
    if "log_format" in daemon:
        take(
            "log_format",
            lambda: choice(daemon["log_format"], ("json", "console"), path, "daemon.log_format"),
        )
    if "log_level" in daemon:
        take(
            "log_level",
            lambda: choice(
                string(daemon["log_level"], path, "daemon.log_level").lower(),
                ("debug", "info", "warning", "error"),
                path,
                "daemon.log_level",
            ),
        )
    if "listen" in api:
        take("api_listen", lambda: _check_listen(string(api["listen"], path, "api.listen"), path))
    if "shutdown_deadline" in daemon:
        take(
            "shutdown_deadline",
            lambda: parse_duration(
                daemon["shutdown_deadline"], path, "daemon.shutdown_deadline", SHUTDOWN_DEADLINE
            ),
        )
    if "max_concurrent_runs" in daemon:
        take(
            "max_concurrent_runs",
            lambda: max_concurrent_runs(
                daemon["max_concurrent_runs"], path, "daemon.max_concurrent_runs"
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
    take("store", lambda: load_store_settings(data.get("store"), path))
    if "history_days" in defaults:
        take(
            "history_days",
            lambda: history_days(defaults["history_days"], path, "defaults.history_days"),
        )
    problems.raise_any()
    if "state_dir" in values:
        values["state_dir"] = values["state_dir"].expanduser()
    return DaemonConfig(**{**result.__dict__, **values})


def _api_token(raw: Any, path: Path) -> str | None:
    if raw is None:
        return None
    key = "api.token"
    resolved = resolve(string(raw, path, key), path, key)
    register_resolved(resolved, path, key, always=True)
    return resolved.value


def _check_listen(listen: str, path: Path) -> str:
    if listen.startswith("unix:"):
        if len(listen) <= 5:
            raise ConfigError(path, "api.listen", "unix: needs a socket path")
        return listen
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isascii() or not port.isdigit() or len(port) > 5:
        raise ConfigError(
            path, "api.listen", f"expected HOST:PORT or unix:PATH, got {show(listen)}"
        )
    if not 0 < int(port) < 65536:
        raise ConfigError(
            path, "api.listen", f"expected HOST:PORT or unix:PATH, got {show(listen)}"
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
    "history_days",
    "on_mass_deletion",
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
    check_keys(data, SYNC_KEYS, path, "", problems)
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
        sides[side] = load_side(data[side], side, path, plugins, problems)
    take(
        "direction",
        lambda: choice(data.get("direction", "two-way"), DIRECTIONS, path, "direction"),
    )
    take("initial", lambda: choice(data.get("initial", "merge"), INITIAL_MODES, path, "initial"))
    take(
        "interval",
        lambda: parse_duration(
            data.get("interval", daemon.default_interval), path, "interval", INTERVAL
        ),
    )
    take("winner", lambda: choice(data.get("winner", "a"), WINNERS, path, "winner"))
    take("deletions", lambda: choice(data.get("deletions", "ignore"), DELETIONS, path, "deletions"))
    take(
        "deletion_tag",
        lambda: tag_name(data.get("deletion_tag", "syncd-deleted"), path, "deletion_tag"),
    )
    take("match", lambda: choice(data.get("match", "email"), MATCHING, path, "match"))
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
    take(
        "history_days",
        lambda: history_days(data.get("history_days", daemon.history_days), path, "history_days"),
    )
    take(
        "on_mass_deletion",
        lambda: choice(
            data.get("on_mass_deletion", "stop"), ON_MASS_DELETION, path, "on_mass_deletion"
        ),
    )
    direction = values.get("direction", "two-way")
    a, b = sides["a"], sides["b"]
    take("rules", lambda: load_all_rules(data.get("rules", {}), direction, path, problems))
    if a is not None and b is not None:
        take("fields", lambda: load_fields(data.get("fields", []), a, b, direction, path, problems))
        if "initial" in values and "direction" in values:
            with problems.check():
                _check_write_only(a, b, direction, values["initial"], path)
        with problems.check():
            _check_same_data(a, b, path)
        if "deletions" in values and "direction" in values:
            with problems.check():
                _check_deletions(a, b, direction, values["deletions"], path)
        if "interval" in values:
            with problems.check():
                check_interval_budget(a, b, values["interval"], path)
        if "rules" in values:
            rules_ab, rules_ba = values["rules"]
            for rules, receiver, rules_key in ((rules_ab, b, "a-to-b"), (rules_ba, a, "b-to-a")):
                with problems.check():
                    check_rule_targets(rules, receiver, path, f"rules.{rules_key}")
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
        history_days=values["history_days"],
        on_mass_deletion=values["on_mass_deletion"],
    )


def _boolean(value: Any, path: Path, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(path, key, f"expected true or false, got {show(value)}")
    return value


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
        if deletions == "tag" and not writable_field(receiver.connector_class, "tags"):
            raise ConfigError(
                path,
                "deletions",
                f"side {side_name} ({receiver.connector}) has no tags field to tag records in; "
                "use 'ignore'"
                + (
                    "" if receiver.connector_class.capabilities.archive is None else " or 'archive'"
                ),
            )


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
