"""Rule 12 at the daemon: secrets from the config appear in no API response, no CLI output and no
log line — here an ``[api] token`` and a connector's secret setting, both ``${env:...}``
references, with a connector whose error message carries its secret, as careless apps' do."""

from __future__ import annotations

from pathlib import Path

from leaky_support import PLUGIN_ENV, syncd_cli, write_leaky_sync

from syncd.testing.daemon import DaemonProcess, free_port, wait_until, write_daemon_config

API_TOKEN = "api-token-8f3c1d9e77aa40b2"
APP_TOKEN = "app-secret-5b0e2a6c19d84f71"
ENV = PLUGIN_ENV | {
    "DAEMON_API_TOKEN": API_TOKEN,
    "LEAKY_APP_TOKEN": APP_TOKEN,
}


def test_config_secrets_appear_in_no_response_and_no_log_line(tmp_path: Path) -> None:
    config, state, data = tmp_path / "config", tmp_path / "state", tmp_path / "data"
    listen = f"127.0.0.1:{free_port()}"
    write_daemon_config(config, listen, state, extra='token = "${env:DAEMON_API_TOKEN}"\n')
    data.mkdir()
    (data / "a.csv").write_text("email,first_name\nann@example.com,Ann\n")
    write_leaky_sync(config, data, "LEAKY_APP_TOKEN")
    outputs: list[str] = []
    with DaemonProcess(config, state, listen, env=ENV) as daemon:
        daemon.wait_ready()
        client = daemon.client(token=API_TOKEN)
        # the configured token is the one in force, and none was generated
        assert client.request("GET", "/api/v1/status")[0] == 200
        assert not (state / "api-token").exists()
        leaky = wait_until(
            lambda: (s := client.call("GET", "/api/v1/syncs/leaky"))["last_run"] and s,
            60,
            "the leaky run",
        )
        # the scenario happened: the app's message held the secret, and it was masked
        assert leaky["last_run"]["outcome"] == "failed"
        assert "refused token ***" in leaky["last_run"]["message"]
        for method, path in (
            ("GET", "/healthz"),
            ("GET", "/api/v1/status"),
            ("GET", "/api/v1/syncs"),
            ("GET", "/api/v1/syncs/leaky"),
            ("GET", "/api/v1/syncs/leaky/runs"),
            ("GET", "/api/v1/syncs/leaky/errors"),
            ("GET", "/api/v1/plugins"),
            ("GET", "/metrics"),
            ("POST", "/api/v1/reload"),
            ("POST", "/api/v1/syncs/leaky/trigger"),
            ("GET", "/api/v1/nothing-here"),
        ):
            status, body = client.request(method, path)
            outputs.append(f"{method} {path} {status} {body}")
        for args in (
            ("status",),
            ("status", "--json"),
            ("history", "leaky", "--json"),
            ("errors", "leaky", "--json"),
            ("trigger", "leaky", "--wait"),
        ):
            result = syncd_cli(config, ENV, *args)
            outputs.append(result.stdout + result.stderr)
        assert daemon.stop() == 0
    log = daemon.log_text()
    assert "run failed" in log  # the failure was logged, traceback and all
    for secret in (API_TOKEN, APP_TOKEN):
        for output in outputs:
            assert secret not in output
        assert secret not in log
