"""The hooks a syncd plugin may implement.

A plugin is a module (usually found through the ``syncd`` entry-point group) with functions named
after these hooks and decorated with :data:`syncd.hookimpl`. Every hook receives a ``register``
callback or the click group, in the style of llm and datasette, so a plugin never needs to know
how syncd stores what it registers.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("syncd")
hookimpl = pluggy.HookimplMarker("syncd")


@hookspec
def register_connectors(register: Any) -> None:
    """Register connector classes: call ``register(ConnectorSubclass)`` once per connector.

    The class's ``name`` is what sync files use in ``connector = "..."``. Two plugins registering
    the same name is an error reported by ``syncd plugins`` and ``syncd check``.
    """


@hookspec
def register_commands(cli: Any) -> None:
    """Add commands to the ``syncd`` click group: ``@cli.command()`` on your functions."""


@hookspec
def register_sandboxes(register: Any) -> None:
    """Register local emulators of a vendor API: ``register(name, factory, help=...)``.

    ``factory(seed: int | None, options: dict)`` returns an ``aiohttp.web.Application``; ``syncd
    sandbox NAME --port P --seed N`` serves it on 127.0.0.1. ``seed`` asks for sample data.
    """
