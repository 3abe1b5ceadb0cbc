"""The console's settings in ``[api]`` of syncd.toml (issue 13; docs/console.md explains them).

* ``base_path``: the path prefix a reverse proxy serves the console under (``"/syncd"``). The
  proxy strips it before passing a request on; the console writes it in front of every link,
  form, asset, cookie path and OAuth redirect it makes. Default ``""`` (served at ``/``).
* ``session_lifetime``: how long a console sign-in lasts (a duration, default ``"7d"``).
* ``trust_proxy``: believe ``X-Forwarded-Proto``/``X-Forwarded-Host``/``X-Forwarded-For`` (only
  behind a proxy that sets them; anyone could send them otherwise). Default ``false``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from syncd.config_errors import ConfigError
from syncd.config_values import DAY, MINUTE, Bounds, parse_duration, show, string, type_name

#: the keys of ``[api]`` this module reads
CONSOLE_KEYS = ("base_path", "session_lifetime", "trust_proxy")
SESSION_LIFETIME = Bounds(5 * MINUTE, 365 * DAY)
DEFAULT_SESSION_LIFETIME = 7 * DAY
_BASE_PATH = re.compile(r"(/[A-Za-z0-9._~-]+)+")


def base_path(value: Any, path: Path) -> str:
    text = string(value, path, "api.base_path").strip()
    if text in ("", "/"):
        return ""
    text = text.rstrip("/")
    if not _BASE_PATH.fullmatch(text) or any(p in (".", "..") for p in text.split("/")):
        raise ConfigError(
            path,
            "api.base_path",
            f"expected a path such as '/syncd' (letters, digits, . _ ~ -), got {show(value)}",
        )
    return text


def console_settings(api: dict[str, Any], path: Path) -> dict[str, Any]:
    """The DaemonConfig fields the console's keys give (only those present)."""
    values: dict[str, Any] = {}
    if "base_path" in api:
        values["api_base_path"] = base_path(api["base_path"], path)
    if "session_lifetime" in api:
        values["session_lifetime"] = parse_duration(
            api["session_lifetime"], path, "api.session_lifetime", SESSION_LIFETIME
        )
    if "trust_proxy" in api:
        flag = api["trust_proxy"]
        if not isinstance(flag, bool):
            raise ConfigError(
                path, "api.trust_proxy", f"expected true or false, got {type_name(flag)}"
            )
        values["api_trust_proxy"] = flag
    return values
