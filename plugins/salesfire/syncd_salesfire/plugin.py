"""syncd hooks of the Salesfire plugin: the ``salesfire`` connector and its emulator."""

from __future__ import annotations

from typing import Any

from syncd import hookimpl
from syncd_salesfire.connector import SalesfireConnector


def _sandbox(seed: int | None, options: dict[str, Any]) -> Any:
    # imported when a sandbox is started, not whenever syncd loads its plugins (every
    # `syncd healthcheck` does)
    from syncd_salesfire.sandbox import create_app

    return create_app(seed, options)


@hookimpl
def register_connectors(register: Any) -> None:
    register(SalesfireConnector)


@hookimpl
def register_sandboxes(register: Any) -> None:
    register(
        "salesfire",
        _sandbox,
        help=(
            "Salesfire customer-list emulator: POST /client/demo-site/customers/newsletter "
            "(or /customers), secret 'sandbox-secret', hex signatures; "
            "GET /_sandbox/customers?list=newsletter shows what it holds (sandbox only)"
        ),
    )
