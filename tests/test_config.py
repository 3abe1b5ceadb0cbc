"""Config loading: the format of design.md §3.1, secret references, and clear errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from support import SYNCD, cli_env, write_sync

from syncd.config import ConfigError, load_config, load_sync, parse_duration
from syncd.plugins import Plugins
from syncd.redact import known_secrets

GOOD = """
direction = "two-way"
interval = "10m"
initial = "merge"
winner = "a"
deletions = "ignore"

[a]
connector = "memory"
account = "acme"
token = "${env:TEST_MEMORY_TOKEN}"

[b]
connector = "csv"
path = "/tmp/contacts.csv"

[[fields]]
a = "custom.account_number"
b = "custom.xero_account_number"
direction = "a-to-b"

[[rules.a-to-b]]
if = [ { field = "email", op = "is_set" },
       { field = "tags", op = "contains", value = "customer" } ]
then = [ { add_tag = "from-xero" } ]
"""


def test_the_design_example_loads(
    tmp_path: Path, plugins: Plugins, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_MEMORY_TOKEN", "tok-123456")
    path = write_sync(tmp_path, "xero-salesflare", GOOD)
    sync = load_sync(path, plugins)
    assert sync.name == "xero-salesflare"
    assert sync.interval == 600
    assert sync.a.settings["token"] == "tok-123456"
    assert "tok-123456" in known_secrets()
    assert sync.fields[0].direction == "a-to-b"
    rule = sync.rules_a_to_b[0]
    assert [c.op for c in rule.conditions] == ["is_set", "contains"]
    assert rule.actions[0].kind == "add_tag"


def test_secret_references(
    tmp_path: Path, plugins: Plugins, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("from-a-file\n")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "memtoken").write_text("from-systemd")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    monkeypatch.setenv("DOCKER_SECRET_FILE", str(secret_file))
    for reference, expected in (
        (f"${{file:{secret_file}}}", "from-a-file"),
        ("${cred:memtoken}", "from-systemd"),
        ("${env:DOCKER_SECRET}", "from-a-file"),  # Docker's NAME_FILE convention
    ):
        path = write_sync(
            tmp_path,
            "s",
            f'[a]\nconnector = "memory"\naccount = "x"\ntoken = "{reference}"\n'
            '[b]\nconnector = "memory"\naccount = "y"\n',
        )
        assert load_sync(path, plugins).a.settings["token"] == expected


@pytest.mark.parametrize(
    ("value", "seconds"), [("10m", 600), ("1h30m", 5400), ("45s", 45), ("1d", 86400), (90, 90)]
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value, Path("f"), "k") == seconds


BAD_CASES = {
    "malformed-toml": ('direction = "two-way\n[a]\n', "not valid TOML"),
    "unknown-connector": (
        '[a]\nconnector = "nosuch"\n[b]\nconnector = "csv"\npath = "x.csv"\n',
        "a.connector: unknown connector 'nosuch'",
    ),
    "missing-secret": (
        '[a]\nconnector = "memory"\naccount = "x"\ntoken = "${env:SYNCD_TEST_UNSET_VAR}"\n'
        '[b]\nconnector = "csv"\npath = "x.csv"\n',
        "a.token: environment variable SYNCD_TEST_UNSET_VAR is not set",
    ),
    "unknown-operator": (
        '[a]\nconnector = "csv"\npath = "a.csv"\n[b]\nconnector = "csv"\npath = "b.csv"\n'
        '[[rules.a-to-b]]\nif = [ { field = "email", op = "looks_like" } ]\nthen = []\n',
        "rules.a-to-b[0].if[0].op: unknown operator 'looks_like'",
    ),
    "write-only-read": (
        'direction = "two-way"\n[a]\nconnector = "csv"\npath = "a.csv"\n'
        '[b]\nconnector = "memory-push"\naccount = "p"\n',
        "direction: side b (memory-push) is write-only",
    ),
    "unknown-key": (
        'directon = "two-way"\n[a]\nconnector = "csv"\npath = "a.csv"\n'
        '[b]\nconnector = "csv"\npath = "b.csv"\n',
        "directon: unknown key",
    ),
    "bad-choice": (
        'winner = "c"\n[a]\nconnector = "csv"\npath = "a.csv"\n'
        '[b]\nconnector = "csv"\npath = "b.csv"\n',
        "winner: must be one of a, b, newest",
    ),
    "missing-required-setting": (
        '[a]\nconnector = "csv"\n[b]\nconnector = "csv"\npath = "b.csv"\n',
        "a.path: required by csv",
    ),
    "unknown-field": (
        '[a]\nconnector = "csv"\npath = "a.csv"\n[b]\nconnector = "memory"\naccount = "m"\n'
        '[[fields]]\na = "custom.x"\nb = "NoSuchField"\n',
        "fields[0].b: memory has no field 'NoSuchField'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_exits_2_with_one_line_naming_file_and_key(tmp_path: Path, case: str) -> None:
    body, expected = BAD_CASES[case]
    path = write_sync(tmp_path, "broken", body)
    result = subprocess.run(
        [*SYNCD, "--config", str(tmp_path), "--state-dir", str(tmp_path / "state"), "check"],
        capture_output=True,
        text=True,
        env=cli_env(SYNCD_PLUGIN_MODULES="syncd.testing.memory"),
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {path}"), lines[0]
    assert expected in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_sync_of_a_bad_config_also_exits_2(tmp_path: Path) -> None:
    write_sync(tmp_path, "broken", BAD_CASES["unknown-connector"][0])
    result = subprocess.run(
        [*SYNCD, "--config", str(tmp_path), "sync", "broken"],
        capture_output=True,
        text=True,
        env=cli_env(),
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_bad_daemon_settings_name_the_key(tmp_path: Path, plugins: Plugins) -> None:
    (tmp_path / "syncd.toml").write_text('[api]\nlisten = "nowhere"\n')
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, plugins)
    assert str(info.value).endswith("api.listen: expected HOST:PORT or unix:PATH, got 'nowhere'")


def test_config_dir_missing(tmp_path: Path) -> None:
    result = subprocess.run(
        [*SYNCD, "--config", str(tmp_path / "nope"), "check"],
        capture_output=True,
        text=True,
        env=cli_env(),
    )
    assert result.returncode == 2
    assert "config directory does not exist" in result.stderr


def test_the_shipped_examples_and_the_demo_pass_the_stricter_checks(
    tmp_path: Path, plugins: Plugins, monkeypatch: pytest.MonkeyPatch
) -> None:
    from support import ROOT

    for name, value in {
        "XERO_CLIENT_SECRET": "sandbox-custom-secret",
        "SALESFLARE_API_KEY": "sandbox-api-key",
        "WOODPECKER_API_KEY": "wp-sandbox-key",
        "SALESFIRE_SECRET": "sandbox-secret",
        "CARDDAV_PASSWORD": "demo-sandbox-pass",
        "DEMO_XERO_URL": "http://127.0.0.1:9",
        "DEMO_SALESFLARE_URL": "http://127.0.0.1:9",
    }.items():
        monkeypatch.setenv(name, value)
    examples = sorted((ROOT / "config" / "examples").glob("*.toml"))
    demo = sorted((ROOT / "config" / "demo" / "syncs").glob("*.toml"))
    assert examples and demo
    for path in [*examples, *demo]:
        copy = tmp_path / path.parent.name / "syncs" / path.name
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text(path.read_text())
        load_sync(copy, plugins)


async def test_a_csv_file_that_became_a_fifo_or_is_not_utf8_is_refused_at_run_time(
    tmp_path: Path,
) -> None:
    """``syncd check`` refuses both; a file changed after the check must not hang or crash
    the run either."""
    import os

    from syncd.connector import ConnectorConfigError, ConnectorContext
    from syncd.connectors.csv import CsvConnector

    context = ConnectorContext("s", "a", tmp_path / "state", config_dir=tmp_path)
    os.mkfifo(tmp_path / "fifo.csv")
    (tmp_path / "latin1.csv").write_bytes(
        "email,first_name\nzoe@example.com,Zo\xe9\n".encode("latin-1")
    )
    for name, message in (
        ("fifo.csv", "not a regular file"),
        ("latin1.csv", "line 2 is not UTF-8"),
    ):
        connector = CsvConnector({"path": name, "delimiter": ",", "batch_size": 10}, context)
        with pytest.raises(ConnectorConfigError, match=message):
            await connector.check()
