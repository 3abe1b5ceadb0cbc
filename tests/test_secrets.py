"""Rule 12: secrets never leak into logs, error messages or --json output."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import ROOT, SYNCD, cli_env, write_sync

from syncd import redact as redact_module
from syncd.config import load_sync
from syncd.plugins import Plugins
from syncd.redact import known_secrets, redact, register_secret

SECRET = "sk_live_9f8e7d6c5b4a3210"


@contextmanager
def secrets_registered_here() -> Iterator[None]:
    """Forget, afterwards, the secrets a test registers in this process (random ones, here)."""
    saved = set(redact_module._secrets)
    try:
        yield
    finally:
        with redact_module._lock:
            redact_module._secrets.clear()
            redact_module._secrets.update(saved)
            redact_module._pattern = None


def test_a_leaky_connector_cannot_leak_its_secret(tmp_path: Path) -> None:
    (tmp_path / "other.csv").write_text("email,first_name\ntwo@example.com,Two\n")
    write_sync(
        tmp_path,
        "leak",
        '[a]\nconnector = "leaky"\napi_key = "${env:LEAKY_KEY}"\n'
        f'[b]\nconnector = "csv"\npath = "{tmp_path / "other.csv"}"\n',
    )
    env = cli_env(
        LEAKY_KEY=SECRET,
        SYNCD_PLUGIN_MODULES="leaky_plugin",
        PYTHONPATH=str(ROOT / "tests"),
    )
    base = [*SYNCD, "--config", str(tmp_path), "--state-dir", str(tmp_path / "state")]
    outputs = []
    for args in (
        ["--log-level", "debug", "--log-format", "json", "sync", "leak"],
        ["--log-level", "debug", "sync", "leak", "--json"],
        ["--log-format", "console", "sync", "leak", "--dry-run", "--json"],
        ["errors", "leak", "--json"],
        ["errors", "leak"],
        ["history", "leak", "--json"],
        ["changes", "leak", "--json"],
        ["check", "--connect"],
    ):
        result = subprocess.run([*base, *args], capture_output=True, text=True, env=env)
        outputs.append((args, result.stdout + result.stderr))
    joined = "\n".join(text for _, text in outputs)
    assert "refused" in joined  # the refusal itself is reported ...
    assert "***" in joined  # ... with the secret masked
    for args, text in outputs:
        assert SECRET not in text, f"secret leaked by syncd {' '.join(args)}:\n{text}"
    # the status database, the change journal in it included (issue 15)
    stored = b"".join(p.read_bytes() for p in (tmp_path / "state").glob("syncd.db*"))
    assert SECRET.encode() not in stored


# --- issue 21, section 3: whatever the key order ---------------------------------------------

XERO_SECRET = "xero-client-secret-4b1f9c"


def _check(tmp_path: Path, body: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    write_sync(tmp_path, "s", body)
    return subprocess.run(
        [*SYNCD, "--config", str(tmp_path), "--state-dir", str(tmp_path / "state"), "check", *args],
        capture_output=True,
        text=True,
        env=cli_env(SYNCD_PLUGIN_MODULES="leaky_plugin", PYTHONPATH=str(ROOT / "tests"), **env),
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


XERO_SIDES = (
    '[a]\nconnector = "xero"\nclient_id = "client-1"\n{first}\n{second}\n'
    '[b]\nconnector = "csv"\npath = "b.csv"\n'
)
GRANT = 'grant = "${env:XERO_CLIENT_SECRET}"'
CLIENT_SECRET = 'client_secret = "${env:XERO_CLIENT_SECRET}"'


@pytest.mark.parametrize(
    ("first", "second"),
    [(GRANT, CLIENT_SECRET), (CLIENT_SECRET, GRANT), (GRANT, "")],
    ids=["grant-first", "client-secret-first", "grant-alone"],
)
def test_a_secret_in_the_wrong_setting_is_not_printed_whatever_the_order(
    tmp_path: Path, first: str, second: str
) -> None:
    result = _check(
        tmp_path, XERO_SIDES.format(first=first, second=second), XERO_CLIENT_SECRET=XERO_SECRET
    )
    assert result.returncode == 2
    assert "a.grant: must be one of authorization_code, client_credentials" in result.stderr
    assert "the value of ${env:XERO_CLIENT_SECRET}" in result.stderr
    assert XERO_SECRET not in result.stdout + result.stderr


def test_a_reference_in_a_setting_not_declared_public_is_secret(tmp_path: Path) -> None:
    tenant_file = tmp_path / "tenant.txt"
    tenant_file.write_text("Acme Holdings Secret Org\n")
    result = _check(
        tmp_path,
        '[a]\nconnector = "leaky"\napi_key = "${env:LEAKY_KEY}"\n'
        f'tenant = "${{file:{tenant_file}}}"\nregion = "${{env:LEAKY_REGION}}"\n'
        '[b]\nconnector = "csv"\npath = "b.csv"\n',
        "--connect",
        LEAKY_KEY=SECRET,
        LEAKY_REGION="eu-west-public",
    )
    output = result.stdout + result.stderr
    assert result.returncode == 3, output
    assert "could not connect with key *** to tenant *** in region eu-west-public" in output
    assert "Acme Holdings Secret Org" not in output and SECRET not in output


def test_public_settings_are_not_registered_and_references_elsewhere_are(
    tmp_path: Path, plugins: Plugins, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FUZZ_CLIENT_ID", "public-client-id-77")
    monkeypatch.setenv("FUZZ_TENANT", "tenant-from-env-88")
    monkeypatch.setenv("FUZZ_XERO_SECRET", XERO_SECRET)
    path = write_sync(
        tmp_path,
        "x",
        '[a]\nconnector = "xero"\nclient_id = "${env:FUZZ_CLIENT_ID}"\n'
        'tenant = "${env:FUZZ_TENANT}"\nclient_secret = "${env:FUZZ_XERO_SECRET}"\n'
        '[b]\nconnector = "csv"\npath = "b.csv"\n',
    )
    sync = load_sync(path, plugins)
    assert sync.a.settings["client_id"] == "public-client-id-77"
    secrets = known_secrets()
    # the client id is in the authorisation URL `syncd auth` prints: declared public
    assert "public-client-id-77" not in secrets
    assert {"tenant-from-env-88", XERO_SECRET} <= secrets


@secrets_registered_here()
def test_redaction_masks_whole_tokens_only() -> None:
    register_secret("sandbox1")
    # glued to a letter or digit, it is part of another word (and case matters)
    text = "Sandbox1 User, xsandbox1, sandbox1x, 9sandbox19"
    assert redact(text) == text
    for masked in (
        "https://h/sandbox1.json",  # delimited by anything else, it is masked: a leak is worse
        "key=sandbox1-suffix",
        "sandbox1@host",
        "sandbox1.user@example.com",
        "sandbox1_x",
        "me+sandbox1@example.com",
        "key sandbox1",
        "key=sandbox1&x=1",
        '{"api_key": "sandbox1"}',
        "Bearer sandbox1",
        "refused key sandbox1.",
        "/api/sandbox1/contacts",
        "(sandbox1)",
        "sandbox1: invalid",
    ):
        assert "sandbox1" not in redact(masked), masked
        assert "***" in redact(masked)


@secrets_registered_here()
def test_redaction_does_not_depend_on_registration_order() -> None:
    register_secret("abcdefgh-short-one")
    register_secret("abcdefgh")
    assert redact("k=abcdefgh-short-one") == "k=***"
    assert redact("k=abcdefgh") == "k=***"


@pytest.mark.parametrize("value", ["sandbox", "abc", ""])
def test_a_secret_shorter_than_8_characters_is_refused_naming_the_key(
    tmp_path: Path, value: str
) -> None:
    result = _check(
        tmp_path,
        '[a]\nconnector = "leaky"\napi_key = "${env:LEAKY_KEY}"\n'
        '[b]\nconnector = "csv"\npath = "b.csv"\n',
        LEAKY_KEY=value,
    )
    assert result.returncode == 2
    line = result.stderr.strip()
    assert line.startswith(f"error: {tmp_path / 'syncs' / 's.toml'}: a.api_key: ")
    assert "the value of ${env:LEAKY_KEY} is" in line
    assert "at least 8 characters" in line


@pytest.mark.parametrize(
    "reference", ["${ENV:LEAKY_KEY}", "$LEAKY_KEY", "${env:LEAKY_KEY", "${file:}", "${vault:k}"]
)
def test_a_mistyped_reference_is_an_error_never_a_literal_key(
    tmp_path: Path, reference: str
) -> None:
    result = _check(
        tmp_path,
        f'[a]\nconnector = "leaky"\napi_key = "{reference}"\n'
        '[b]\nconnector = "csv"\npath = "b.csv"\n',
        "--connect",
        LEAKY_KEY=SECRET,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "a.api_key: " in result.stderr
    assert "could not connect" not in result.stdout  # nothing was sent


@given(
    secret=st.text(
        alphabet=st.sampled_from(
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
        ),
        min_size=8,
        max_size=40,
    ).filter(lambda s: s[0].isalnum() and s[-1].isalnum()),
    before=st.sampled_from([" ", "=", '"', "'", "/", ":", "(", "[", ",", "\n", "Bearer ", ""]),
    after=st.sampled_from([" ", "&", '"', "'", "/", ":", ")", "]", ",", ".", ". Next", "\n", ""]),
    word=st.sampled_from(["x", "user", "9", "Z"]),
    joiner=st.sampled_from([".", "-", "_", "@", "+", "/"]),
)
@settings(max_examples=300, deadline=None)
def test_a_delimited_secret_is_always_masked_and_a_longer_word_never(
    secret: str, before: str, after: str, word: str, joiner: str
) -> None:
    with secrets_registered_here():
        register_secret(secret)
        text = f"refused {before}{secret}{after}"
        assert secret not in redact(text)
        inside = f"{word}{secret}{word}"
        assert redact(inside) == inside
        for joined in (f"{secret}{joiner}{word}", f"{word}{joiner}{secret}"):
            assert secret not in redact(joined), joined


# --- the web console and its event stream (issue 13) ------------------------------------------

CONSOLE_API_TOKEN = "console-api-token-7e2b91d04c"
CONSOLE_APP_TOKEN = "console-app-secret-3f8a60c2d1"


def test_no_secret_in_any_console_page_event_or_error(tmp_path: Path) -> None:
    import json
    import re

    import requests
    from leaky_support import PLUGIN_ENV, write_leaky_sync

    from syncd.testing.daemon import DaemonProcess, free_port, wait_until, write_daemon_config

    config, state, data = tmp_path / "config", tmp_path / "state", tmp_path / "data"
    listen = f"127.0.0.1:{free_port()}"
    write_daemon_config(config, listen, state, extra='token = "${env:CONSOLE_API_TOKEN}"\n')
    data.mkdir()
    (data / "a.csv").write_text("email,first_name\nann@example.com,Ann\n")
    write_leaky_sync(config, data, "CONSOLE_APP_TOKEN")
    env = PLUGIN_ENV | {
        "CONSOLE_API_TOKEN": CONSOLE_API_TOKEN,
        "CONSOLE_APP_TOKEN": CONSOLE_APP_TOKEN,
    }
    url = f"http://{listen}"
    bearer = {"Authorization": f"Bearer {CONSOLE_API_TOKEN}"}
    seen: list[str] = []
    with DaemonProcess(config, state, listen, env=env) as daemon:
        daemon.wait_ready()
        wait_until(
            lambda: requests.get(f"{url}/api/v1/syncs", headers=bearer, timeout=60).json()["syncs"][
                0
            ]["last_run"],
            120,
            "the first run",
        )
        browser = requests.Session()
        form = browser.get(f"{url}/signin", timeout=60)
        seen.append(form.text)
        field = re.search(r'name="signin_csrf" value="([^"]+)"', form.text)
        assert field
        wrong = browser.post(
            f"{url}/signin", data={"token": "wrong", "signin_csrf": field.group(1)}, timeout=60
        )
        seen.append(wrong.text)
        field = re.search(r'name="signin_csrf" value="([^"]+)"', wrong.text)  # a new form
        assert field
        signed = browser.post(
            f"{url}/signin",
            data={"token": CONSOLE_API_TOKEN, "signin_csrf": field.group(1)},
            timeout=60,
        )
        assert signed.status_code == 200 and "leaky" in signed.text
        stream = requests.get(f"{url}/api/v1/events", headers=bearer, stream=True, timeout=60)
        lines = stream.iter_lines(decode_unicode=True)
        next(lines)
        requests.post(f"{url}/api/v1/syncs/leaky/trigger", headers=bearer, timeout=60)
        for line in lines:
            seen.append(line)
            if line.startswith("event: error"):
                seen.append(next(lines))
                break
        stream.close()
        for path in ("/", "/plugins", "/syncs/leaky", "/syncs/leaky/connect/a", "/nowhere"):
            answer = browser.get(url + path, timeout=60)
            seen.append(answer.text)
            seen.append(json.dumps(dict(answer.headers)))
        log = daemon.log_text()
    assert any("the app refused token" in text for text in seen), "the leak was not shown"
    for text in [*seen, log]:
        assert CONSOLE_APP_TOKEN not in text
        assert CONSOLE_API_TOKEN not in text


# --- issue 17: the store's token key and the OAuth tokens kept in a PostgreSQL store ----------


def test_no_token_key_nor_stored_token_in_any_output(tmp_path: Path) -> None:
    import asyncio
    import json

    from cryptography.fernet import Fernet
    from pg_support import new_database
    from pg_xero import XeroSandbox, authorise

    from syncd.store import Store, StoreSettings

    key = Fernet.generate_key().decode()
    url = new_database()
    sandbox = XeroSandbox(seed=3, count=5, rate_limits=False)
    try:
        store = Store(tmp_path / "auth", StoreSettings(url=url, token_key=key))
        store.open()
        try:
            asyncio.run(authorise(store, sandbox, "crm"))
        finally:
            store.close()
        (data,) = _ciphertexts(url)
        tokens = json.loads(Fernet(key.encode()).decrypt(data.encode()))
        config = tmp_path / "config"
        write_sync(
            config,
            "crm",
            f'[a]\nconnector = "xero"\n{sandbox.toml()}\n'
            f'[b]\nconnector = "csv"\npath = "{tmp_path / "b.csv"}"\n',
        )
        (config / "syncd.toml").write_text(
            f'[store]\nurl = "{url}"\ntoken_key = "${{env:THE_TOKEN_KEY}}"\n'
        )
        base = [*SYNCD, "--config", str(config), "--state-dir", str(tmp_path / "state")]
        outputs = []
        for env_key, args in (
            (key, ["--log-level", "debug", "--log-format", "json", "sync", "crm", "--json"]),
            (key, ["--log-level", "debug", "sync", "crm", "--dry-run", "--json"]),
            (key, ["errors", "crm", "--json"]),
            (key, ["history", "crm", "--json"]),
            (key, ["check", "--connect"]),
            (key, ["migrate"]),
            (Fernet.generate_key().decode(), ["sync", "crm", "--json"]),  # a wrong key
            ("not a key at all, nor 44 characters", ["sync", "crm"]),
        ):
            result = subprocess.run(
                [*base, *args],
                capture_output=True,
                text=True,
                env=cli_env(THE_TOKEN_KEY=env_key),
                timeout=180,
            )
            outputs.append((args, env_key, result.stdout + result.stderr))
        assert "token_key" in outputs[-1][2] and "token_key" in outputs[-2][2]
        for args, env_key, text in outputs:
            for secret in (key, env_key, tokens["access_token"], tokens["refresh_token"]):
                assert secret not in text, f"a secret leaked by syncd {' '.join(args)}:\n{text}"
    finally:
        sandbox.close()


def _ciphertexts(url: str) -> list[str]:
    """The ``oauth_token`` rows' ciphertext, read with a plain connection."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return [str(r[0]) for r in conn.execute("SELECT data FROM oauth_token").fetchall()]
