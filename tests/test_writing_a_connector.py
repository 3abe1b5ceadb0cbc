"""The examples in docs/writing-a-connector.md work: the connector syncs with the CSV connector,
and the engine-level test written with the shared runner (``syncd.testing.runner``) passes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from support import ROOT, SYNCD, cli_env, write_sync

DOC = ROOT / "docs" / "writing-a-connector.md"


def documented(opening: str) -> str:
    """The doc's Python block that starts with ``opening``."""
    code = re.search(r"```python\n(" + re.escape(opening) + r".*?)```", DOC.read_text(), re.S)
    assert code is not None, f"no code block starting {opening!r} in {DOC.name}"
    return code.group(1)


def install_plugin(root: Path) -> None:
    """The documented connector as the package ``syncd_jsonbook`` under ``root``."""
    package = root / "syncd_jsonbook"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "plugin.py").write_text(documented('"""A connector for a JSON address book'))


def test_the_documented_connector_syncs(tmp_path: Path) -> None:
    install_plugin(tmp_path)
    book = tmp_path / "book.json"
    book.write_text(
        json.dumps(
            {
                "contacts": {
                    "c1": {
                        "mail": "ann@example.com",
                        "given": "Ann",
                        "labels": ["vip"],
                        "created": "2020",
                    }
                }
            }
        )
    )
    crm = tmp_path / "crm.csv"
    crm.write_text("email,first_name,last_name\nbob@example.com,Bob,Ray\nANN@example.com,,Lee\n")
    write_sync(
        tmp_path / "config",
        "book-to-crm",
        f'[a]\nconnector = "jsonbook"\npath = "{book}"\ntoken = "${{env:BOOK_TOKEN}}"\n'
        f'[b]\nconnector = "csv"\npath = "{crm}"\n',
    )
    env = cli_env(
        SYNCD_PLUGIN_MODULES="syncd_jsonbook.plugin",
        PYTHONPATH=str(tmp_path),
        BOOK_TOKEN="t0k3n-x-book",
    )
    base = [*SYNCD, "--config", str(tmp_path / "config"), "--state-dir", str(tmp_path / "s")]
    plugins = subprocess.run([*base, "plugins"], capture_output=True, text=True, env=env)
    assert "connectors: jsonbook" in plugins.stdout, plugins.stdout + plugins.stderr
    result = subprocess.run(
        [*base, "sync", "book-to-crm", "--json"], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    counts = json.loads(result.stdout)["counts"]
    assert (counts["linked"], counts["created_a"]) == (1, 1)
    contacts = json.loads(book.read_text())["contacts"]
    by_mail = {c["mail"].lower(): c for c in contacts.values()}
    assert by_mail["bob@example.com"]["family"] == "Ray"
    assert by_mail["ann@example.com"]["family"] == "Lee"
    assert by_mail["ann@example.com"]["created"] == "2020"
    assert "Ann" in crm.read_text()
    again = subprocess.run(
        [*base, "sync", "book-to-crm", "--json"], capture_output=True, text=True, env=env
    )
    written = json.loads(again.stdout)["counts"]
    assert (
        written["created_a"] + written["created_b"] + written["updated_a"] + written["updated_b"]
        == 0
    )


def test_the_documented_engine_level_test_passes(tmp_path: Path) -> None:
    """The "Testing it" example, run by pytest as an author would run it, with the connector
    loaded from its module (not installed)."""
    install_plugin(tmp_path)
    (tmp_path / "test_jsonbook.py").write_text(documented('"""test_jsonbook.py'))
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    result = subprocess.run(
        [*pytest, "-o", "asyncio_mode=auto", "--rootdir", str(tmp_path), "test_jsonbook.py"],
        cwd=tmp_path,
        env=cli_env(PYTHONPATH=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_the_documented_connector_takes_webhooks(tmp_path: Path) -> None:
    """The "Webhooks" part of the example, against a real daemon: a signed change notice makes
    a run of just that record, long before the hour's interval; a badly signed one is refused."""
    import hashlib
    import hmac

    from syncd.testing.daemon import DaemonProcess, free_port, wait_until, write_daemon_config
    from syncd.testing.webhooks import post_raw

    install_plugin(tmp_path)
    book = tmp_path / "book.json"
    book.write_text(json.dumps({"contacts": {"c1": {"mail": "ann@example.com", "given": "Ann"}}}))
    crm = tmp_path / "crm.csv"
    crm.write_text("email,first_name\nbob@example.com,Bob\n")
    config, state, port = tmp_path / "config", tmp_path / "state", free_port()
    write_daemon_config(config, f"127.0.0.1:{port}", state, extra='[hooks]\ndebounce = "0.2s"\n')
    write_sync(
        config,
        "book-to-crm",
        f'interval = "1h"\n[a]\nconnector = "jsonbook"\npath = "{book}"\n'
        'webhook_secret = "${env:BOOK_HOOK}"\n'
        f'[b]\nconnector = "csv"\npath = "{crm}"\n',
    )
    secret = "s3cret-of-the-book"
    env = {"SYNCD_PLUGIN_MODULES": "syncd_jsonbook.plugin", "PYTHONPATH": str(tmp_path),
           "BOOK_HOOK": secret}  # fmt: skip
    with DaemonProcess(config, state, f"127.0.0.1:{port}", env=env) as daemon:
        daemon.wait_ready()
        wait_until(lambda: "Ann" in crm.read_text(), 60, "the first run")
        contacts = json.loads(book.read_text())
        contacts["contacts"]["c1"]["given"] = "Annabel"
        book.write_text(json.dumps(contacts))
        body = json.dumps({"changed": ["c1"]}).encode()
        signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        url = f"http://127.0.0.1:{port}/hooks/jsonbook/home"
        assert post_raw(url, body, {"X-Book-Signature": "0" * 64})[0] == 401
        assert post_raw(url, body, {"X-Book-Signature": signature})[:2] == (200, b"")
        wait_until(lambda: "Annabel" in crm.read_text(), 60, "the change in crm.csv")

        def webhook_run() -> dict[str, object] | None:
            runs = daemon.get("/api/v1/syncs/book-to-crm/runs")["runs"]
            return next((r for r in runs if r["trigger"] == "webhook"), None)

        run = wait_until(webhook_run, 60, "the webhook-driven run")
        assert wait_until(lambda: daemon.get("/api/v1/syncs/book-to-crm")["state"] == "idle")
        assert run["trigger"] == "webhook"
