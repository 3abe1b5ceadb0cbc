"""Config for webhooks: ``[hooks]`` in syncd.toml, and an ``interval`` refused when polling alone
would spend more than half of an app's daily call budget (apps without webhooks may poll often,
but not past what they allow)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import syncd_on, write_sync

from syncd.config import ConfigError, load_config, load_daemon_config
from syncd.plugins import Plugins


def xero_sync(config: Path, interval: str, day_limit: int | None = None) -> Path:
    limit = f"day_limit = {day_limit}\n" if day_limit is not None else ""
    return write_sync(
        config,
        "xero-crm",
        f'interval = "{interval}"\n'
        '[a]\nconnector = "xero"\nclient_id = "my-app"\n'
        'webhook_key = "0123456789abcdef"\n' + limit + "[b]\n"
        f'connector = "csv"\npath = "{config.parent / "crm.csv"}"\n',
    )


def test_an_interval_the_daily_budget_cannot_sustain_is_refused(
    tmp_path: Path, plugins: Plugins
) -> None:
    config = tmp_path / "config"
    xero_sync(config, "1m", day_limit=1000)
    with pytest.raises(ConfigError) as caught:
        load_config(config, plugins)
    message = str(caught.value)
    assert "xero-crm.toml" in message and "interval" in message
    assert "1,440 times a day" in message and "1,000 calls a day" in message
    assert "at least 3m" in message
    result = syncd_on(config, "check")
    assert result.returncode == 2, result.stderr
    assert "interval" in result.stderr and "Traceback" not in result.stderr


def test_the_same_interval_fits_a_larger_budget_and_the_default_fits_both(
    tmp_path: Path, plugins: Plugins
) -> None:
    config = tmp_path / "config"
    xero_sync(config, "1m", day_limit=5000)
    assert load_config(config, plugins).syncs["xero-crm"].interval == 60
    xero_sync(config, "10m", day_limit=1000)
    assert load_config(config, plugins).syncs["xero-crm"].interval == 600


def test_an_app_without_a_published_limit_may_poll_every_ten_seconds(
    tmp_path: Path, plugins: Plugins
) -> None:
    config = tmp_path / "config"
    write_sync(
        config,
        "crm",
        f'interval = "10s"\n[a]\nconnector = "csv"\npath = "{tmp_path / "a.csv"}"\n'
        f'[b]\nconnector = "csv"\npath = "{tmp_path / "b.csv"}"\n',
    )
    assert load_config(config, plugins).syncs["crm"].interval == 10


def test_the_hooks_table(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "syncd.toml").write_text('[hooks]\nlisten = "0.0.0.0:8766"\ndebounce = "500ms"\n')
    daemon = load_daemon_config(config)
    assert daemon.hooks_listen == "0.0.0.0:8766" and daemon.hooks_debounce == 0.5
    (config / "syncd.toml").write_text("")
    daemon = load_daemon_config(config)
    assert daemon.hooks_listen is None and daemon.hooks_debounce == 2.0


@pytest.mark.parametrize(
    ("body", "key", "words"),
    [
        ('[hooks]\nlisten = "nowhere"\n', "hooks.listen", "HOST:PORT"),
        ('[hooks]\nlisten = "127.0.0.1:99999"\n', "hooks.listen", "HOST:PORT"),
        ('[hooks]\ndebounce = "2h"\n', "hooks.debounce", "longer"),
        ('[hooks]\ndebounse = "2s"\n', "hooks.debounse", "unknown key"),
        ('hooks = "yes"\n', "hooks", "expected a table"),
    ],
)
def test_a_bad_hooks_table_is_one_line_naming_the_key(
    tmp_path: Path, body: str, key: str, words: str
) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "syncd.toml").write_text(body)
    with pytest.raises(ConfigError) as caught:
        load_daemon_config(config)
    message = str(caught.value)
    assert "syncd.toml" in message and key in message and words in message, message
