"""syncd-xero's hooks: the ``xero`` connector and the ``xero`` sandbox."""

from __future__ import annotations

from typing import Any

from syncd import hookimpl
from syncd_xero.connector import XeroConnector


def _sandbox(seed: int | None, options: dict[str, Any]) -> Any:
    # imported when a sandbox is started, not whenever syncd loads its plugins (every
    # `syncd healthcheck` does)
    from syncd_xero.sandbox import make_app

    return make_app(seed, options)


@hookimpl
def register_connectors(register: Any) -> None:
    register(XeroConnector)


@hookimpl
def register_sandboxes(register: Any) -> None:
    register(
        "xero",
        _sandbox,
        help="Xero identity + Accounting Contacts emulator (OAuth2, paging, rate limits); "
        "point api_url, identity_url and login_url at it",
    )
