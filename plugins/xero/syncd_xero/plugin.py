"""syncd-xero's hooks: the ``xero`` connector and the ``xero`` sandbox."""

from __future__ import annotations

import importlib.util
from typing import Any

from syncd import hookimpl
from syncd_xero.connector import XeroConnector

#: what the sandbox's id_token signing (sandbox_oidc) needs: syncd-xero's sandbox extra
SANDBOX_EXTRA = ("jwt", "cryptography")


def sandbox_missing() -> str | None:
    """The one-line reason the sandbox cannot run here, or None: pyjwt and cryptography come
    with ``syncd-xero[sandbox]``, not with the connector (looked for, not imported)."""
    missing = [name for name in SANDBOX_EXTRA if _absent(name)]
    if not missing:
        return None
    names = " and ".join("pyjwt" if name == "jwt" else name for name in missing)
    return (
        f"the xero sandbox signs id_tokens with {names}, which this installation lacks:"
        " install syncd-xero's sandbox extra (pip install 'syncd-xero[sandbox]')"
    )


def _absent(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is None
    except (ImportError, ValueError):
        return True


def _sandbox(seed: int | None, options: dict[str, Any]) -> Any:
    missing = sandbox_missing()
    if missing is not None:
        # one line and exit status 2, as syncd's own usage errors (never a traceback)
        from syncd.cli import fail

        fail(missing)
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
