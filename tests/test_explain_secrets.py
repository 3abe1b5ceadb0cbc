"""Rule 12 for the health view, Retry now and "why did this contact not sync?": a connector whose
error carries its secret (testcsv ``fail = "leak"``) is asked for live values through the API,
the CLI and the console's sync page, and the secret appears in none of their answers nor in the
daemon's log."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from leaky_support import PLUGIN_ENV, syncd_cli, write_leaky_sync

from syncd.testing.daemon import DaemonProcess, free_port, wait_until, write_daemon_config

APP_TOKEN = "app-secret-7d1c9e0b35aa4f62"
ENV = PLUGIN_ENV | {"LEAKY_APP_TOKEN": APP_TOKEN}


def test_live_values_of_a_leaky_app_are_masked_everywhere(tmp_path: Path) -> None:
    config, state, data = tmp_path / "config", tmp_path / "state", tmp_path / "data"
    listen = f"127.0.0.1:{free_port()}"
    write_daemon_config(config, listen, state)
    data.mkdir()
    (data / "b.csv").write_text("id,email,first_name\nb1,ann@example.com,Ann\n")
    write_leaky_sync(config, data, "LEAKY_APP_TOKEN")
    outputs: list[str] = []
    with DaemonProcess(config, state, listen, env=ENV) as daemon:
        daemon.wait_ready()
        client = daemon.client()
        wait_until(lambda: client.call("GET", "/api/v1/syncs/leaky")["last_run"], 60, "a run")
        status, body = client.request("GET", "/api/v1/syncs/leaky/explain?record=b1&live=true")
        assert status == 200
        # the scenario happened: side a's error held the secret, and it was masked
        assert "refused token ***" in str(body)
        outputs.append(str(body))
        for method, path in (
            ("GET", "/api/v1/syncs/leaky/health"),
            ("POST", "/api/v1/syncs/leaky/retry"),
        ):
            outputs.append(str(client.request(method, path)))
        for args in (("--json",), ()):
            result = syncd_cli(config, ENV, "explain", "leaky", "b1", "--live", *args)
            assert "refused token ***" in result.stdout, result.stdout + result.stderr
            outputs.append(result.stdout + result.stderr)
        # the console's sync page, signed in with a one-time code
        code = client.call("POST", "/api/v1/console/codes")["path"]
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        opener.open(f"http://{listen}{code}", timeout=60).read()
        page = (
            opener.open(f"http://{listen}/syncs/leaky?record=b1&live=1", timeout=60).read().decode()
        )
        assert "refused token ***" in page
        outputs.append(page)
        assert daemon.stop() == 0
    log = daemon.log_text()
    for output in outputs:
        assert APP_TOKEN not in output
    assert APP_TOKEN not in log
