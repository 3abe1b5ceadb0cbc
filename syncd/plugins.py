"""Loading plugins: entry-point group ``syncd`` plus the built-in connectors.

``SYNCD_LOAD_PLUGINS`` (comma-separated distribution names; empty means none) restricts which
installed distributions are loaded. ``SYNCD_PLUGIN_MODULES`` (comma-separated module names) loads
modules that are not installed as distributions, which is handy while writing a plugin.

A plugin that fails to import, declares a hook that does not exist, or raises while registering is
recorded as a :class:`PluginProblem` and left out; the others keep working. ``syncd plugins`` and
``syncd check`` show the problems.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

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
    """Everything the loaded plugins registered."""

    manager: pluggy.PluginManager
    connectors: dict[str, type[Connector]] = field(default_factory=dict)
    sandboxes: dict[str, Sandbox] = field(default_factory=dict)
    problems: list[PluginProblem] = field(default_factory=list)
    infos: dict[str, PluginInfo] = field(default_factory=dict)

    def connector(self, name: str) -> type[Connector] | None:
        return self.connectors.get(name)

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
        for impl in self.manager.hook.register_commands.get_hookimpls():
            try:
                impl.function(cli=cli)
            except Exception as exc:
                self.problems.append(
                    PluginProblem(impl.plugin_name, f"register_commands failed: {exc}")
                )


def _allowed_distributions() -> set[str] | None:
    raw = os.environ.get("SYNCD_LOAD_PLUGINS")
    if raw is None:
        return None
    return {_canonical(name) for name in raw.split(",") if name.strip()}


def _canonical(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def load_plugins(extra: Iterable[ModuleType | object] = ()) -> Plugins:
    """Load the default plugins, the installed ones and ``extra`` (throw-away test plugins)."""
    manager = pluggy.PluginManager("syncd")
    manager.add_hookspecs(hookspecs)
    plugins = Plugins(manager)

    for module_name in DEFAULT_PLUGINS:
        _register(plugins, importlib.import_module(module_name), module_name, None, None)

    allowed = _allowed_distributions()
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = entry_point.dist
        dist_name = dist.name if dist is not None else entry_point.name
        if allowed is not None and _canonical(dist_name) not in allowed:
            continue
        try:
            module = entry_point.load()
        except Exception as exc:
            plugins.problems.append(
                PluginProblem(dist_name, f"failed to import {entry_point.value}: {exc}")
            )
            continue
        version = dist.version if dist is not None else None
        _register(plugins, module, entry_point.name, dist_name, version)

    for module_name in _split(os.environ.get("SYNCD_PLUGIN_MODULES", "")):
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            plugins.problems.append(PluginProblem(module_name, f"failed to import: {exc}"))
            continue
        _register(plugins, module, module_name, None, None)

    for index, module in enumerate(extra):
        name = getattr(module, "__name__", None) or f"extra-{index}"
        _register(plugins, module, name, None, None)

    _collect(plugins)
    return plugins


def _split(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def _register(
    plugins: Plugins, module: object, name: str, dist: str | None, version: str | None
) -> None:
    manager = plugins.manager
    if manager.is_registered(module) or manager.has_plugin(name):
        return
    try:
        manager.register(module, name=name)
        manager.check_pending()
    except Exception as exc:
        if manager.is_registered(module):
            manager.unregister(module)
        plugins.problems.append(PluginProblem(dist or name, str(exc)))
        return
    hooks = sorted(impl_name for impl_name in _hook_names(manager, module))
    plugins.infos[name] = PluginInfo(name, dist, version, hooks)


def _hook_names(manager: pluggy.PluginManager, module: object) -> Sequence[str]:
    return [caller.name for caller in manager.get_hookcallers(module) or []]


def _collect(plugins: Plugins) -> None:
    manager = plugins.manager
    for impl in manager.hook.register_connectors.get_hookimpls():
        found: list[type[Connector]] = []
        try:
            impl.function(register=found.append)
        except Exception as exc:
            plugins.problems.append(
                PluginProblem(impl.plugin_name, f"register_connectors failed: {exc}")
            )
            continue
        for cls in found:
            problem = _connector_problem(plugins, cls)
            if problem:
                plugins.problems.append(PluginProblem(impl.plugin_name, problem))
                continue
            plugins.connectors[cls.name] = cls
            plugins.infos[impl.plugin_name].connectors.append(cls.name)

    for impl in manager.hook.register_sandboxes.get_hookimpls():
        owner = impl.plugin_name

        def register(
            name: str, factory: SandboxFactory, help: str = "", _owner: str = owner
        ) -> None:
            plugins.sandboxes[name] = Sandbox(name, factory, help, _owner)
            plugins.infos[_owner].sandboxes.append(name)

        try:
            impl.function(register=register)
        except Exception as exc:
            plugins.problems.append(PluginProblem(owner, f"register_sandboxes failed: {exc}"))


def _connector_problem(plugins: Plugins, cls: object) -> str | None:
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        return f"registered {cls!r}, which is not a syncd.connector.Connector subclass"
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        return f"connector class {cls.__name__} has no name"
    if name in plugins.connectors and plugins.connectors[name] is not cls:
        return f"connector name {name!r} is already registered by another plugin"
    return None
