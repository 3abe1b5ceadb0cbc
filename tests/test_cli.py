"""The command line on the README's first-merge example: preview, run, inspect."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from support import SYNCD, cli_env, syncd_on

syncd = syncd_on


def test_first_merge_preview_then_run(example: Path) -> None:
    before = {p.name: p.read_bytes() for p in example.glob("*.csv")}
    preview = syncd(example, "sync", "crm-to-accounts", "--dry-run")
    assert preview.returncode == 0, preview.stderr
    assert "Dry run of crm-to-accounts: nothing was written." in preview.stdout
    assert "2 pairs matched by email" in preview.stdout
    assert "on a: 1" in preview.stdout and "on b: 2" in preview.stdout
    assert "last_name" in preview.stdout  # Smith vs Smyth
    assert "no email address" in preview.stdout
    assert {p.name: p.read_bytes() for p in example.glob("*.csv")} == before

    planned = json.loads(syncd(example, "sync", "crm-to-accounts", "--dry-run", "--json").stdout)
    summary = planned["plan"]["summary"]
    assert (summary["linked"], summary["create_a"], summary["create_b"]) == (2, 1, 2)
    conflict_fields = {(c["email"], c["field"]) for c in planned["plan"]["conflicts"]}
    assert ("jane.smith@acme.example", "last_name") in conflict_fields
    assert ("omar@globex.example", "company") in conflict_fields

    real = syncd(example, "sync", "crm-to-accounts", "--json")
    assert real.returncode == 0, real.stderr
    counts = json.loads(real.stdout)["counts"]
    assert (counts["linked"], counts["created_a"], counts["created_b"]) == (2, 1, 2)
    assert counts["conflicts"] == summary["conflicts"]

    crm = (example / "crm.csv").read_text()
    accounts = (example / "accounts.csv").read_text()
    assert "pat@hooli.example" in crm and "li.wei@initech.example" in accounts
    assert "Smith" in accounts and "Smyth" not in accounts  # a wins conflicts
    assert "0113 496 0000" in crm or "+441134960000" in crm  # filled, never blanked

    again = json.loads(syncd(example, "sync", "crm-to-accounts", "--json").stdout)
    written = {k: v for k, v in again["counts"].items() if k.startswith(("created", "updated"))}
    assert set(written.values()) == {0}

    links = json.loads(syncd(example, "links", "crm-to-accounts", "--json").stdout)
    assert len([k for k in links if k["state"] == "linked"]) == 5
    errors = json.loads(syncd(example, "errors", "crm-to-accounts", "--json").stdout)
    assert [e["kind"] for e in errors] == ["excluded"]
    history = json.loads(syncd(example, "history", "crm-to-accounts", "--json").stdout)
    assert [h["outcome"] for h in history] == ["success", "success"]


def test_broken_csv_rows_are_reported_and_the_rest_synced(example: Path) -> None:
    crm = example / "crm.csv"
    crm.write_text(crm.read_text() + "broken@row.example,only,three\n")
    result = syncd(example, "sync", "crm-to-accounts")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "failed 1" in result.stdout
    errors = syncd(example, "errors", "crm-to-accounts")
    assert "line 7: 3 cells where the header has" in errors.stdout
    assert "li.wei@initech.example" in (example / "accounts.csv").read_text()
    assert "broken@row.example,only,three" in crm.read_text()  # kept exactly as it was


def test_unknown_sync_and_usage_errors_exit_2(example: Path) -> None:
    missing = syncd(example, "sync", "nope")
    assert missing.returncode == 2
    assert "no sync named 'nope' (configured: crm-to-accounts)" in missing.stderr
    usage = syncd(example, "sync")
    assert usage.returncode == 2


def test_a_sync_already_running_is_refused(example: Path) -> None:
    from syncd.store.lock import SyncLock

    with SyncLock(example.parent / "state", "crm-to-accounts"):
        result = syncd(example, "sync", "crm-to-accounts")
    assert result.returncode == 3
    assert "is already running" in result.stderr


def test_plugins_and_sandbox_listing() -> None:
    listing = subprocess.run(
        [*SYNCD, "plugins"], capture_output=True, text=True, env=cli_env(), check=True
    )
    assert "connectors: csv" in listing.stdout
    sandboxes = subprocess.run(
        [*SYNCD, "sandbox"], capture_output=True, text=True, env=cli_env(), check=True
    )
    assert sandboxes.returncode == 0
