"""Config for webhooks: ``[hooks]`` in syncd.toml, and the check of a sync's ``interval``
against its apps' daily call budgets.

```toml
[hooks]
listen = "0.0.0.0:8766"   # optional: a second listener that serves only /hooks/... paths
debounce = "2s"           # events are gathered this long before the run they trigger
```
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from syncd.config_errors import ConfigError, Problems
from syncd.config_settings import SideConfig
from syncd.config_values import Bounds, check_keys, format_seconds, parse_duration, show, string

HOOKS_KEYS = ("listen", "debounce")
DEBOUNCE = Bounds(0.0, 600.0)
DEFAULT_DEBOUNCE = 2.0
#: the share of an app's daily budget that polling alone may take (the rest: writes, full
#: listings, retries)
POLL_SHARE = 0.5


def load_hooks(table: dict[str, Any], path: Path, problems: Problems) -> dict[str, Any]:
    """The ``[hooks]`` table as DaemonConfig values (``hooks_listen``, ``hooks_debounce``)."""
    check_keys(table, HOOKS_KEYS, path, "hooks.", problems)
    values: dict[str, Any] = {}
    if "listen" in table:
        with problems.check():
            values["hooks_listen"] = check_listen(
                string(table["listen"], path, "hooks.listen"), path, "hooks.listen"
            )
    if "debounce" in table:
        with problems.check():
            values["hooks_debounce"] = parse_duration(
                table["debounce"], path, "hooks.debounce", DEBOUNCE
            )
    return values


def check_listen(listen: str, path: Path, key: str) -> str:
    if listen.startswith("unix:"):
        if len(listen) <= 5:
            raise ConfigError(path, key, "unix: needs a socket path")
        return listen
    host, sep, port = listen.rpartition(":")
    if (
        not sep
        or not host
        or not port.isascii()
        or not port.isdigit()
        or len(port) > 5
        or not 0 < int(port) < 65536
    ):
        raise ConfigError(path, key, f"expected HOST:PORT or unix:PATH, got {show(listen)}")
    return listen


def check_interval_budget(a: SideConfig, b: SideConfig, interval: float, path: Path) -> None:
    """Refuse an ``interval`` whose polls alone would spend more than half of a side's daily
    call budget (an app without webhooks may poll often, but not past what it allows)."""
    for side_name, side in (("a", a), ("b", b)):
        cls = side.connector_class
        if not cls.capabilities.read:
            continue
        budget = cls.daily_call_budget(side.settings)
        if not budget:
            continue
        polls = math.ceil(86400.0 / interval) * max(1, cls.calls_per_poll)
        allowed = budget * POLL_SHARE
        if polls > allowed:
            shortest = math.ceil(86400.0 * max(1, cls.calls_per_poll) / allowed)
            if shortest > 60:
                shortest = math.ceil(shortest / 60) * 60  # whole minutes read better
            raise ConfigError(
                path,
                "interval",
                f"{format_seconds(interval)} polls {cls.name} ({side_name}) {polls:,} times a "
                f"day, more than half of its {budget:,} calls a day; use an interval of at "
                f"least {format_seconds(float(shortest))} (webhooks carry changes sooner)",
            )
