"""``[store]`` of ``syncd.toml``: which database the status lives in.

```toml
[store]
url = "postgresql://syncd@db.internal:5432/syncd"   # omitted: SQLite in the state directory
password = "${env:SYNCD_DB_PASSWORD}"               # a secret reference; or PG* vars / .pgpass
lease_timeout = "30s"                               # how soon another daemon takes a sync over
daemon_id = "box-1"                                 # how this daemon is named in claims
connections = 4                                     # PostgreSQL connections of one process
token_key = "${env:SYNCD_TOKEN_KEY}"                # Fernet key: OAuth tokens in the store
```

``SYNCD_STORE_URL`` in the environment overrides ``url``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from syncd.config_errors import ConfigError, Problems
from syncd.config_secrets import resolve
from syncd.config_settings import register_resolved
from syncd.config_values import Bounds, check_keys, parse_duration, show, string, table
from syncd.store.engines import DEFAULT_LEASE, PG_STORE_THREADS, StoreSettings, is_postgres_url
from syncd.store.lazy_psycopg import postgresql_missing

LEASE = Bounds(1.0, 3600.0)
KEYS = ("url", "password", "lease_timeout", "daemon_id", "connections", "token_key")
CONNECTIONS = (1, 64)


def load_store_settings(raw: Any, path: Path) -> StoreSettings:
    """The ``[store]`` table (``raw``), checked: every problem names its key."""
    data = table(raw if raw is not None else {}, path, "store")
    problems = Problems()
    check_keys(data, KEYS, path, "store.", problems)
    values: dict[str, Any] = {}
    with problems.check():
        url = os.environ.get("SYNCD_STORE_URL") or data.get("url")
        if url is not None:
            url = string(url, path, "store.url")
            if not is_postgres_url(url):
                raise ConfigError(
                    path,
                    "store.url",
                    f"expected postgresql://USER@HOST:PORT/DATABASE, got {show(url)}"
                    " (leave it out for SQLite in the state directory)",
                )
            if (
                "@" in url.split("//", 1)[-1].split("/", 1)[0]
                and ":" in url.split("//", 1)[-1].split("@", 1)[0]
            ):
                raise ConfigError(
                    path,
                    "store.url",
                    "put the password in store.password (a secret reference), a .pgpass file or"
                    " PGPASSWORD, not in the URL",
                )
            # psycopg and cryptography are syncd's postgresql extra: say so now, not at the
            # first query
            missing = postgresql_missing()
            if missing is not None:
                raise ConfigError(path, "store.url", missing)
            values["url"] = url
    if "password" in data:
        with problems.check():
            resolved = resolve(
                string(data["password"], path, "store.password"), path, "store.password"
            )
            register_resolved(resolved, path, "store.password", always=True)
            values["password"] = resolved.value
    if "lease_timeout" in data:
        with problems.check():
            values["lease_timeout"] = parse_duration(
                data["lease_timeout"], path, "store.lease_timeout", LEASE
            )
    if "daemon_id" in data:
        with problems.check():
            values["daemon_id"] = string(data["daemon_id"], path, "store.daemon_id")
    if "connections" in data:
        with problems.check():
            values["connections"] = _connections(data["connections"], path)
    if "token_key" in data:
        with problems.check():
            values["token_key"] = token_key(data["token_key"], path)
    problems.raise_any()
    return StoreSettings(
        connections=values.get("connections", PG_STORE_THREADS),
        url=values.get("url"),
        password=values.get("password"),
        lease_timeout=values.get("lease_timeout", DEFAULT_LEASE),
        daemon_id=values.get("daemon_id"),
        token_key=values.get("token_key"),
    )


def _connections(raw: Any, path: Path) -> int:
    low, high = CONNECTIONS
    if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
        raise ConfigError(
            path,
            "store.connections",
            f"expected a whole number from {low} to {high}, got {show(raw)}",
        )
    return raw


def token_key(raw: Any, path: Path) -> str:
    """``[store] token_key``: a secret reference to one Fernet key (or several, for rotation)."""
    from syncd.store.tokens import parse_keys

    resolved = resolve(string(raw, path, "store.token_key"), path, "store.token_key")
    register_resolved(resolved, path, "store.token_key", always=True)
    for part in resolved.value.replace(",", " ").split():
        register_resolved(type(resolved)(part), path, "store.token_key", always=True)
    try:
        parse_keys(resolved.value)
    except ValueError as exc:
        raise ConfigError(path, "store.token_key", str(exc)) from None
    return resolved.value
