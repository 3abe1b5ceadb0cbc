"""syncd hooks of the Woodpecker plugin: the ``woodpecker`` connector and its sandbox."""

from __future__ import annotations

from typing import Any

from syncd import hookimpl
from syncd_woodpecker.connector import WoodpeckerConnector


def _sandbox(seed: int | None, options: dict[str, Any]) -> Any:
    # imported when a sandbox is started, not whenever syncd loads its plugins (every
    # `syncd healthcheck` does)
    from syncd_woodpecker.sandbox import make_app

    return make_app(seed, options)


@hookimpl
def register_connectors(register: Any) -> None:
    register(WoodpeckerConnector)


@hookimpl
def register_sandboxes(register: Any) -> None:
    register(
        "woodpecker",
        _sandbox,
        help=(
            "Woodpecker.co prospects API v1 (/rest/v1/prospects, add_prospects_list); "
            "api_key = 'wp-sandbox-key', base_url = http://127.0.0.1:PORT/rest"
        ),
    )
