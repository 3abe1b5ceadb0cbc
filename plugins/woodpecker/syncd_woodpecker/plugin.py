"""syncd hooks of the Woodpecker plugin: the ``woodpecker`` connector and its sandbox."""

from __future__ import annotations

from typing import Any

from syncd import hookimpl
from syncd_woodpecker.connector import WoodpeckerConnector
from syncd_woodpecker.sandbox import DEFAULT_API_KEY, make_app


@hookimpl
def register_connectors(register: Any) -> None:
    register(WoodpeckerConnector)


@hookimpl
def register_sandboxes(register: Any) -> None:
    register(
        "woodpecker",
        make_app,
        help=(
            "Woodpecker.co prospects API v1 (/rest/v1/prospects, add_prospects_list); "
            f"api_key = {DEFAULT_API_KEY!r}, base_url = http://127.0.0.1:PORT/rest"
        ),
    )
