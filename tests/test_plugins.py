"""The plugin system: hooks documented, throw-away plugins, broken plugins reported."""

from __future__ import annotations

import inspect
import json
import subprocess
import types
from typing import Any

from support import SYNCD, cli_env

from syncd import hookimpl, hookspecs
from syncd.connector import Connector
from syncd.plugins import load_plugins
from syncd.testing import memory

HOOKS = ("register_connectors", "register_commands", "register_sandboxes")


def test_every_hook_is_documented() -> None:
    specs = {
        name: fn
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(fn, "syncd_spec")
    }
    assert set(specs) == set(HOOKS)
    for name, fn in specs.items():
        doc = inspect.getdoc(fn) or ""
        assert len(doc) > 40, f"hook {name} needs a docstring saying how to use it"


def test_builtin_csv_connector_is_a_default_plugin() -> None:
    plugins = load_plugins()
    assert "csv" in plugins.connectors
    assert plugins.infos["syncd.connectors.csv"].connectors == ["csv"]


def test_throwaway_plugin_registers_a_connector_and_a_sandbox() -> None:
    class Thing(Connector):
        name = "thing"

    module = types.ModuleType("thing_plugin")

    @hookimpl
    def register_connectors(register: Any) -> None:
        register(Thing)

    @hookimpl
    def register_sandboxes(register: Any) -> None:
        register("thing", lambda seed, options: None, help="a thing")

    module.register_connectors = register_connectors  # type: ignore[attr-defined]
    module.register_sandboxes = register_sandboxes  # type: ignore[attr-defined]
    plugins = load_plugins(extra=[module])
    assert plugins.connectors["thing"] is Thing
    assert "thing" in plugins.sandboxes
    assert plugins.infos["thing_plugin"].hooks == ["register_connectors", "register_sandboxes"]


def test_a_misspelt_hook_is_reported_and_the_rest_keep_working() -> None:
    module = types.ModuleType("typo_plugin")

    @hookimpl
    def register_conectors(register: Any) -> None:  # the typo is the point
        pass

    module.register_conectors = register_conectors  # type: ignore[attr-defined]
    plugins = load_plugins(extra=[module, memory])
    assert any("register_conectors" in p.message for p in plugins.problems)
    assert "memory" in plugins.connectors and "csv" in plugins.connectors


def test_a_plugin_that_raises_while_registering_is_reported() -> None:
    module = types.ModuleType("raising_plugin")

    @hookimpl
    def register_connectors(register: Any) -> None:
        raise RuntimeError("boom")

    module.register_connectors = register_connectors  # type: ignore[attr-defined]
    plugins = load_plugins(extra=[module, memory])
    assert any(p.plugin == "raising_plugin" and "boom" in p.message for p in plugins.problems)
    assert "memory" in plugins.connectors


def test_a_plugin_that_fails_to_import_shows_in_plugins_and_check(tmp_path: Any) -> None:
    env = cli_env(SYNCD_PLUGIN_MODULES="no_such_module_for_syncd,syncd.testing.memory")
    out = subprocess.run(
        [*SYNCD, "plugins", "--json"], capture_output=True, text=True, env=env, check=True
    )
    data = json.loads(out.stdout)
    assert any(p["plugin"] == "no_such_module_for_syncd" for p in data["problems"])
    assert any("memory" in p["connectors"] for p in data["plugins"])
    (tmp_path / "syncs").mkdir()
    check = subprocess.run(
        [*SYNCD, "--config", str(tmp_path), "--state-dir", str(tmp_path / "s"), "check"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert check.returncode == 0
    assert "no_such_module_for_syncd" in check.stderr


def test_syncd_load_plugins_restricts_installed_distributions() -> None:
    env = cli_env(SYNCD_LOAD_PLUGINS="")
    out = subprocess.run(
        [*SYNCD, "plugins", "--json"], capture_output=True, text=True, env=env, check=True
    )
    names = [p["name"] for p in json.loads(out.stdout)["plugins"]]
    assert names == ["syncd.connectors.csv"]
