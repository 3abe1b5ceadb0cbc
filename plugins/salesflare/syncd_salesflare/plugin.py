"""syncd hooks: the ``salesflare`` connector and the ``salesflare`` sandbox."""

from __future__ import annotations

from typing import Any

from syncd import hookimpl
from syncd_salesflare.connector import SalesflareConnector


def _sandbox(seed: int | None, options: dict[str, Any]) -> Any:
    # imported when a sandbox is started, not whenever syncd loads its plugins (every
    # `syncd healthcheck` does)
    from syncd_salesflare.sandbox import make_app

    return make_app(seed, options)


@hookimpl
def register_connectors(register: Any) -> None:
    register(SalesflareConnector)


@hookimpl
def register_sandboxes(register: Any) -> None:
    register(
        "salesflare",
        _sandbox,
        help=(
            "Salesflare contacts and accounts API (Bearer API key 'sandbox-api-key'; "
            "options: count, api_key, rate_limit, max_batch, sort_keys)"
        ),
    )
