"""syncd hooks of the Salesfire plugin: the ``salesfire`` connector and its emulator."""

from __future__ import annotations

from typing import Any

from syncd import hookimpl
from syncd_salesfire.connector import SalesfireConnector
from syncd_salesfire.sandbox import create_app


@hookimpl
def register_connectors(register: Any) -> None:
    register(SalesfireConnector)


@hookimpl
def register_sandboxes(register: Any) -> None:
    register(
        "salesfire",
        create_app,
        help=(
            "Salesfire customer-list emulator: POST /client/demo-site/customers/newsletter "
            "(or /customers), secret 'sandbox-secret', hex signatures; "
            "GET /_sandbox/customers?list=newsletter shows what it holds (sandbox only)"
        ),
    )
