"""The optional dependencies (issue 20: the image is SQLite only by default, 150 MB): without
syncd's ``postgresql`` extra (psycopg, cryptography) a PostgreSQL store, and without
syncd-xero's ``sandbox`` extra (pyjwt, cryptography) the Xero sandbox, fail with one line that
names the extra to install and exit status 2, never a traceback.

The suite's venv has every extra; a real ``syncd`` process is made to lack them with a
``sitecustomize`` that marks the modules as absent (``sys.modules[name] = None``, what Python
does for a module that cannot be imported).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from support import SYNCD, cli_env

PG_URL = "postgresql://syncd@127.0.0.1:1/syncd"


def _without(tmp_path: Path, *modules: str) -> dict[str, str]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in modules)
    )
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
    return cli_env(PYTHONPATH=path)


def _syncd(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SYNCD, *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def _config(tmp_path: Path, store: str) -> Path:
    config = tmp_path / "config"
    (config / "syncs").mkdir(parents=True)
    (config / "syncd.toml").write_text(store)
    return config


def _one_clear_line(result: subprocess.CompletedProcess[str], extra: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert extra in lines[0], lines[0]
    return lines[0]


def test_a_postgresql_store_without_the_postgresql_extra_names_it(tmp_path: Path) -> None:
    env = _without(tmp_path, "psycopg", "psycopg_binary", "cryptography")
    config = _config(tmp_path, f'[store]\nurl = "{PG_URL}"\n')
    state = ["--config", str(config), "--state-dir", str(tmp_path / "state")]
    for command in (["run"], ["status"], ["migrate"]):
        line = _one_clear_line(_syncd(env, *state, *command), "syncd[postgresql]")
        assert "psycopg and cryptography" in line and "store.url" in line, line
    # a URL given on the command line, not in the config
    sqlite = tmp_path / "old"
    sqlite.mkdir()
    copied = _syncd(env, "store", "copy", "--from", f"sqlite:{sqlite}", "--to", PG_URL)
    _one_clear_line(copied, "syncd[postgresql]")


def test_the_sqlite_store_needs_neither_psycopg_nor_cryptography(tmp_path: Path) -> None:
    env = _without(tmp_path, "psycopg", "psycopg_binary", "cryptography", "jwt")
    config = _config(tmp_path, "")
    result = _syncd(env, "--config", str(config), "--state-dir", str(tmp_path / "s"), "migrate")
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


def test_the_xero_sandbox_without_its_extra_names_it(tmp_path: Path) -> None:
    env = _without(tmp_path, "jwt")
    line = _one_clear_line(_syncd(env, "sandbox", "xero"), "syncd-xero[sandbox]")
    assert "pyjwt" in line and "cryptography" not in line.split("lacks")[0], line
    # the connector itself does not need it: listed as ever
    assert "xero" in _syncd(env, "plugins").stdout
