"""syncd hooks of the CardDAV plugin: the ``carddav`` connector and its sandbox."""

from __future__ import annotations

from typing import Any

from syncd import hookimpl
from syncd_carddav.connector import CardDavConnector


def _sandbox(seed: int | None, options: dict[str, Any]) -> Any:
    # imported when a sandbox is started, not whenever syncd loads its plugins
    from syncd_carddav.sandbox import make_app

    return make_app(seed, options)


@hookimpl
def register_connectors(register: Any) -> None:
    register(CardDavConnector)


@hookimpl
def register_sandboxes(register: Any) -> None:
    register(
        "carddav",
        _sandbox,
        help=(
            "a local Radicale CardDAV server with an address book 'Contacts' (--seed N: sample "
            "people); url = http://127.0.0.1:PORT/, username = 'demo', "
            "password = 'demo-sandbox-pass'"
        ),
    )
