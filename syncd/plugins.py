"""Loading plugins: entry-point group ``syncd`` plus the built-in connectors.

``SYNCD_LOAD_PLUGINS`` (comma-separated distribution names; empty means none) restricts which
installed distributions are loaded. ``SYNCD_PLUGIN_MODULES`` (comma-separated module names) loads
modules that are not installed as distributions, which is handy while writing a plugin.

Installed plugins are imported when they are first needed, not all at start-up: a connector is
looked up first in what is loaded, then in the entry point of its own name (``xero`` in
``syncd_xero.plugin``), and only then in all the others. Listing what is installed
(:attr:`Plugins.connectors`, ``infos``, ``sandboxes``, ``problems``, the commands) loads them all.
So a daemon whose syncs use the CSV connector never imports the Xero or CardDAV code (their HTTP
clients, vCard parser, emulators), which is most of its start-up time and memory otherwise.

A plugin that fails to import, declares a hook that does not exist, or raises while registering is
recorded as a :class:`PluginProblem` and left out; the others keep working. ``syncd plugins`` and
``syncd check`` show the problems.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import click
import pluggy

from syncd import hookspecs
from syncd.connector import Connector

DEFAULT_PLUGINS = ("syncd.connectors.csv",)
ENTRY_POINT_GROUP = "syncd"

SandboxFactory = Callable[[int | None, dict[str, Any]], Any]


@dataclass(frozen=True)
class Sandbox:
    name: str
    factory: SandboxFactory
    help: str
    plugin: str


@dataclass(frozen=True)
class PluginProblem:
    plugin: str
    message: str


@dataclass
class PluginInfo:
    name: str
    distribution: str | None
    version: str | None
    hooks: list[str] = field(default_factory=list)
    connectors: list[str] = field(default_factory=list)
    sandboxes: list[str] = field(default_factory=list)


@dataclass
class Plugins:
    """Everything the loaded plugins registered; installed plugins load on first need."""

    manager: pluggy.PluginManager
    _connectors: dict[str, type[Connector]] = field(default_factory=dict)
    _sandboxes: dict[str, Sandbox] = field(default_factory=dict)
    _problems: list[PluginProblem] = field(default_factory=list)
    _infos: dict[str, PluginInfo] = field(default_factory=dict)
    #: installed plugins not imported yet
    _pending: list[importlib.metadata.EntryPoint] = field(default_factory=list)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def connectors(self) -> dict[str, type[Connector]]:
        self.load_all()
        return self._connectors

    @property
    def sandboxes(self) -> dict[str, Sandbox]:
        self.load_all()
        return self._sandboxes

    @property
    def problems(self) -> list[PluginProblem]:
        self.load_all()
        return self._problems

    @property
    def loaded_problems(self) -> list[PluginProblem]:
        """The problems of the plugins imported so far (without importing the others)."""
        return list(self._problems)

    @property
    def infos(self) -> dict[str, PluginInfo]:
        self.load_all()
        return self._infos

    def connector(self, name: str) -> type[Connector] | None:
        with self._lock:
            found = self._connectors.get(name)
            if found is None and self._pending:
                self._load([e for e in self._pending if e.name == name])
                found = self._connectors.get(name)
            if found is None and self._pending:
                self.load_all()
                found = self._connectors.get(name)
            return found

    def load_all(self) -> None:
        """Import every installed plugin not imported yet."""
        if self._pending:
            with self._lock:
                self._load(list(self._pending))

    def _load(self, entry_points: list[importlib.metadata.EntryPoint]) -> None:
        names: list[str] = []
        for entry_point in entry_points:
            if entry_point not in self._pending:
                continue
            self._pending.remove(entry_point)
            dist = entry_point.dist
            dist_name = dist.name if dist is not None else entry_point.name
            try:
                module = entry_point.load()
            except Exception as exc:
                self._problems.append(
                    PluginProblem(dist_name, f"failed to import {entry_point.value}: {exc}")
                )
                continue
            version = dist.version if dist is not None else None
            if _register(self, module, entry_point.name, dist_name, version):
                names.append(entry_point.name)
        _collect(self, names)

    def as_json(self) -> dict[str, Any]:
        """What ``syncd plugins --json`` and ``GET /api/v1/plugins`` answer."""
        return {
            "plugins": [
                {
                    "name": i.name,
                    "distribution": i.distribution,
                    "version": i.version,
                    "hooks": i.hooks,
                    "connectors": i.connectors,
                    "sandboxes": i.sandboxes,
                }
                for i in sorted(self.infos.values(), key=lambda i: i.name)
            ],
            "problems": [{"plugin": p.plugin, "message": p.message} for p in self.problems],
        }

    def add_commands(self, cli: Any) -> None:
        self.load_all()
        for impl in self.manager.hook.register_commands.get_hookimpls():
            try:
                impl.function(cli=cli)
            except Exception as exc:
                self._problems.append(
                    PluginProblem(impl.plugin_name, f"register_commands failed: {exc}")
                )


class PluginCommands(click.Group):
    """The ``syncd`` group: the plugins' commands (hook ``register_commands``) are added the
    first time a command is not found among syncd's own, or all are listed (``--help``), so
    that ``syncd run`` does not import every installed plugin."""

    plugins: Plugins | None = None

    def _add_plugin_commands(self) -> None:
        plugins, self.plugins = self.plugins, None
        if plugins is not None:
            plugins.add_commands(self)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is None and self.plugins is not None:
            self._add_plugin_commands()
            found = super().get_command(ctx, cmd_name)
        return found

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._add_plugin_commands()
        return super().list_commands(ctx)


def _allowed_distributions() -> set[str] | None:
    raw = os.environ.get("SYNCD_LOAD_PLUGINS")
    if raw is None:
        return None
    return {_canonical(name) for name in raw.split(",") if name.strip()}


def _canonical(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def load_plugins(extra: Iterable[ModuleType | object] = ()) -> Plugins:
    """The default plugins, the installed ones (imported on first need, see the module's doc)
    and ``extra`` (throw-away test plugins)."""
    manager = pluggy.PluginManager("syncd")
    manager.add_hookspecs(hookspecs)
    plugins = Plugins(manager)
    names: list[str] = []

    for module_name in DEFAULT_PLUGINS:
        if _register(plugins, importlib.import_module(module_name), module_name, None, None):
            names.append(module_name)

    allowed = _allowed_distributions()
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = entry_point.dist
        dist_name = dist.name if dist is not None else entry_point.name
        if allowed is not None and _canonical(dist_name) not in allowed:
            continue
        plugins._pending.append(entry_point)

    for module_name in _split(os.environ.get("SYNCD_PLUGIN_MODULES", "")):
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            plugins._problems.append(PluginProblem(module_name, f"failed to import: {exc}"))
            continue
        if _register(plugins, module, module_name, None, None):
            names.append(module_name)

    for index, extra_module in enumerate(extra):
        name = getattr(extra_module, "__name__", None) or f"extra-{index}"
        if _register(plugins, extra_module, name, None, None):
            names.append(name)

    _collect(plugins, names)
    return plugins


def _split(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def _register(
    plugins: Plugins, module: object, name: str, dist: str | None, version: str | None
) -> bool:
    """Whether the module is now registered under ``name``."""
    manager = plugins.manager
    if manager.is_registered(module) or manager.has_plugin(name):
        return False
    try:
        manager.register(module, name=name)
        manager.check_pending()
    except Exception as exc:
        if manager.is_registered(module):
            manager.unregister(module)
        plugins._problems.append(PluginProblem(dist or name, str(exc)))
        return False
    hooks = sorted(impl_name for impl_name in _hook_names(manager, module))
    plugins._infos[name] = PluginInfo(name, dist, version, hooks)
    return True


def _hook_names(manager: pluggy.PluginManager, module: object) -> Sequence[str]:
    return [caller.name for caller in manager.get_hookcallers(module) or []]


def _collect(plugins: Plugins, names: list[str]) -> None:
    """Call the connector and sandbox hooks of the plugins just registered as ``names``."""
    manager = plugins.manager
    new = set(names)
    for impl in manager.hook.register_connectors.get_hookimpls():
        if impl.plugin_name not in new:
            continue
        found: list[type[Connector]] = []
        try:
            impl.function(register=found.append)
        except Exception as exc:
            plugins._problems.append(
                PluginProblem(impl.plugin_name, f"register_connectors failed: {exc}")
            )
            continue
        for cls in found:
            problem = _connector_problem(plugins, cls)
            if problem:
                plugins._problems.append(PluginProblem(impl.plugin_name, problem))
                continue
            plugins._connectors[cls.name] = cls
            plugins._infos[impl.plugin_name].connectors.append(cls.name)

    for impl in manager.hook.register_sandboxes.get_hookimpls():
        owner = impl.plugin_name
        if owner not in new:
            continue

        def register(
            name: str, factory: SandboxFactory, help: str = "", _owner: str = owner
        ) -> None:
            plugins._sandboxes[name] = Sandbox(name, factory, help, _owner)
            plugins._infos[_owner].sandboxes.append(name)

        try:
            impl.function(register=register)
        except Exception as exc:
            plugins._problems.append(PluginProblem(owner, f"register_sandboxes failed: {exc}"))


def _connector_problem(plugins: Plugins, cls: object) -> str | None:
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        return f"registered {cls!r}, which is not a syncd.connector.Connector subclass"
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        return f"connector class {cls.__name__} has no name"
    if name in plugins._connectors and plugins._connectors[name] is not cls:
        return f"connector name {name!r} is already registered by another plugin"
    return None
