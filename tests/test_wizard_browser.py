"""Setting up a sync in the browser (issue 14), in a real Chromium against a real daemon started
on an empty config directory, with the Xero and Salesflare sandboxes (tests/browser_support.py).
Each wizard step leaves a screenshot (SYNCD_SCREENSHOTS=docs/console renews docs/console.md's)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import SALESFLARE_KEY, ConsoleDaemon, browser, page, screenshot, sign_in
from playwright.sync_api import Page, expect

from syncd.testing.daemon import wait_until

__all__ = ["browser", "page"]  # the fixtures, for pytest

XERO_SECRET = "sandbox-secret"
WRONG_KEY = "not-the-salesflare-key"
SYNC = "xero-salesflare"


class EmptyConsole(ConsoleDaemon):
    """The console's daemon and sandboxes, but nothing in ``syncs/``."""

    def _write_syncs(self) -> None:
        (self.config / "syncs").mkdir(exist_ok=True)


@pytest.fixture(scope="module")
def empty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmptyConsole]:
    daemon = EmptyConsole(tmp_path_factory.mktemp("wizard"))
    try:
        daemon.start()
        yield daemon
        log = daemon.daemon.log_text()
    finally:
        daemon.close()
    assert "Traceback" not in log, log[-5000:]
    assert "console request failed" not in log, log[-5000:]


def fill_xero_and_salesflare(page: Page, console: ConsoleDaemon, key: str) -> None:
    xero, salesflare = console.urls["xero"], console.urls["salesflare"]
    page.fill('[name="a.client_id"]', "sandbox-client")
    page.fill('[name="a.client_secret"]', XERO_SECRET)
    page.fill('[name="a.tenant"]', "Demo Company (UK)")
    for key_name in ("api_url", "identity_url", "login_url"):
        page.fill(f'[name="a.{key_name}"]', xero)
    page.fill('[name="b.api_key"]', key)
    page.fill('[name="b.base_url"]', salesflare)
    page.fill('[name="b.calls_per_minute"]', "1200")
    page.select_option('[name="b.create_accounts"]', "true")


def cli_dry_run(console: ConsoleDaemon, name: str) -> dict[str, object]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "syncd.cli",
            "--config",
            str(console.config),
            "--state-dir",
            str(console.state),
            "sync",
            name,
            "--dry-run",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")},
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def all_files(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file()]


def test_a_xero_salesflare_sync_set_up_in_the_browser_previews_and_starts(
    empty: EmptyConsole, page: Page
) -> None:
    sign_in(page, empty)
    page.get_by_role("link", name="New sync").click()
    page.get_by_label("Name").fill(SYNC)
    # a write-only app is offered only as app b
    a_options = page.locator("#app-a option").all_inner_texts()
    b_options = page.locator("#app-b option").all_inner_texts()
    assert not any("Salesfire" in o for o in a_options), a_options
    assert any("Salesfire" in o and "write only" in o for o in b_options), b_options
    page.select_option("#app-a", "xero")
    page.select_option("#app-b", "salesflare")
    screenshot(page, "wizard-1-apps", docs=True)
    page.get_by_role("button", name="Next: settings").click()
    expect(page.get_by_role("heading", name="New sync")).to_be_visible()
    # the form comes from the connectors' declared settings: the secrets are password fields
    expect(page.locator('[name="a.client_secret"]')).to_have_attribute("type", "password")
    expect(page.locator('[name="b.api_key"]')).to_have_attribute("type", "password")
    expect(page.locator("#side-b")).to_contain_text("API key (Salesflare → Settings → API keys)")
    fill_xero_and_salesflare(page, empty, WRONG_KEY)
    page.fill('[name="interval"]', "1h")
    # a custom mapping, and the PieSync-style rule
    page.fill('[name="m0.a"]', "Phones.DDI")
    page.select_option('[name="m0.direction"]', "a-to-b")
    page.fill('[name="m0.b"]', "home_phone_number")
    page.select_option('[name="r0.direction"]', "a-to-b")
    page.select_option('[name="r0.c0.field"]', "tags")
    page.select_option('[name="r0.c0.op"]', "contains")
    page.fill('[name="r0.c0.value"]', "customer")
    page.select_option('[name="r0.t0.kind"]', "add_tag")
    page.fill('[name="r0.t0.value"]', "from-xero")
    expect(page.locator('[data-rule="0"] [data-sentence]')).to_have_text(
        'IF tags contains "customer" THEN add tag "from-xero" '
        "(Xero (Contacts) → Salesflare contacts)"
    )
    screenshot(page, "wizard-2-settings", docs=True)
    page.get_by_role("button", name="Save and continue").click()
    refusal = page.locator("#side-b .field-error")
    expect(refusal).to_contain_text("Salesflare refused the API key")
    screenshot(page, "wizard-2-refused", docs=True)
    assert not (empty.config / "syncs" / f"{SYNC}.toml").exists()
    # the form kept what was typed, but not the secrets
    expect(page.locator('[name="m0.a"]')).to_have_value("Phones.DDI")
    expect(page.locator('[name="r0.t0.value"]')).to_have_value("from-xero")
    page.fill('[name="a.client_secret"]', XERO_SECRET)
    page.fill('[name="b.api_key"]', SALESFLARE_KEY)
    page.get_by_role("button", name="Save and continue").click()
    expect(page.get_by_role("heading", name=f"Set up {SYNC}")).to_be_visible()
    text = (empty.config / "syncs" / f"{SYNC}.toml").read_text()
    assert "enabled = false" in text and "[[rules.a-to-b]]" in text and "[[fields]]" in text
    assert "${file:" in text
    screenshot(page, "wizard-3-connect", docs=True)
    # Xero through the sandbox's consent page and the daemon's OAuth callback
    page.get_by_role("link", name="Connect to Xero").click()
    page.get_by_role("button", name="Allow access").click()
    expect(page.get_by_role("heading", name="Connected")).to_be_visible()
    page.get_by_role("link", name=f"Continue setting up {SYNC}").click()
    # nothing ran yet: the first run waits for the preview
    assert empty.syncs()[SYNC]["last_run"] is None
    page.get_by_label("Merge both ways").check()
    page.get_by_role("button", name="Preview the first run").click()
    expect(page.get_by_role("heading", name=f"Preview {SYNC}")).to_be_visible()
    screenshot(page, "wizard-4-preview", docs=True)
    shown = {
        cell.get_attribute("data-count"): int(cell.inner_text())
        for cell in page.locator("[data-count]").all()
    }
    cli = cli_dry_run(empty, SYNC)
    plan = cli["plan"]
    assert isinstance(plan, dict)
    summary = plan["summary"]
    for key in ("linked", "create_a", "create_b", "update_a", "update_b", "conflicts"):
        assert shown[key] == summary[key], (key, shown, summary)
    assert shown["create_b"] + shown["create_a"] > 0
    assert empty.syncs()[SYNC]["last_run"] is None  # still nothing written
    page.get_by_role("button", name="Start syncing").click()
    card = page.locator(f'li[data-sync="{SYNC}"]')
    expect(card.locator('[data-field="last-run"] .outcome')).to_have_text("Succeeded")
    screenshot(page, "wizard-5-started", docs=True)
    # the secrets are in 0600 files under the state directory, referenced from the sync file
    kept = empty.state / "console-secrets" / f"{SYNC}.b.api_key"
    assert kept.read_text() == SALESFLARE_KEY
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert "${file:" + str(kept) + "}" in text
    # no secret in any file of the config directory
    for path in all_files(empty.config):
        body = path.read_bytes()
        for secret in (XERO_SECRET, SALESFLARE_KEY, WRONG_KEY):
            assert secret.encode() not in body, (path, secret)


HAND_WRITTEN = """\
# my backup, written by hand: keep this comment
direction = "a-to-b"   # one way only
interval = "1h"        # hourly is plenty

[a]
connector = "csv"
path = "{source}"

[b]
# the copy
connector = "csv"
path = "{copy}"
"""


def write_hand_sync(console: ConsoleDaemon, name: str) -> Path:
    source = console.data / f"{name}-source.csv"
    source.write_text("email,first_name\nann@example.com,Ann\n")
    path = console.config / "syncs" / f"{name}.toml"
    path.write_text(HAND_WRITTEN.format(source=source, copy=console.data / f"{name}-copy.csv"))
    console.daemon.post("/api/v1/reload")
    wait_until(lambda: name in console.syncs(), 60, f"{name} loaded")
    return path


def test_an_edit_keeps_a_persons_comments_and_a_bad_value_is_refused_next_to_its_field(
    empty: EmptyConsole, page: Page
) -> None:
    path = write_hand_sync(empty, "backup")
    sign_in(page, empty)
    page.goto(empty.url + "/syncs/backup")
    page.locator("#manage").get_by_role("link", name="Edit").click()
    page.fill('[name="interval"]', "2h")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".notice")).to_contain_text("Saved syncs/backup.toml")
    text = path.read_text()
    assert 'interval = "2h"        # hourly is plenty' in text
    assert text.startswith("# my backup, written by hand: keep this comment\n")
    assert "# the copy" in text
    assert text.index("direction") < text.index("interval") < text.index("[a]")
    wait_until(lambda: empty.syncs()["backup"]["interval_seconds"] == 7200, 60, "reloaded")
    # a bad value: refused next to its field, the file unchanged
    before = path.read_bytes()
    page.goto(empty.url + "/syncs/backup/edit")
    page.fill('[name="interval"]', "soon")
    page.get_by_role("button", name="Save", exact=True).click()
    problem = page.locator("#err-interval")
    expect(problem).to_be_visible()
    expect(problem).to_contain_text("soon")
    screenshot(page, "wizard-bad-value", docs=True)
    assert path.read_bytes() == before
    # a bad regex in a rule: flagged next to its field
    page.fill('[name="interval"]', "2h")
    page.select_option('[name="r0.c0.field"]', "email")
    page.select_option('[name="r0.c0.op"]', "matches")
    page.fill('[name="r0.c0.value"]', "([a-z")
    page.select_option('[name="r0.t0.kind"]', "add_tag")
    page.fill('[name="r0.t0.value"]', "odd")
    expect(page.locator('[data-rule="0"] [data-sentence]')).to_contain_text('email matches "([a-z"')
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator('[id="err-r0.c0.value"]')).to_contain_text("regular expression")
    assert path.read_bytes() == before


def test_a_concurrent_edit_is_refused_not_lost(empty: EmptyConsole, page: Page) -> None:
    path = write_hand_sync(empty, "twice")
    sign_in(page, empty)
    other = page.context.new_page()
    page.goto(empty.url + "/syncs/twice/edit")
    other.goto(empty.url + "/syncs/twice/edit")
    page.fill('[name="interval"]', "3h")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".notice")).to_contain_text("Saved")
    other.fill('[name="interval"]', "4h")
    other.get_by_role("button", name="Save", exact=True).click()
    expect(other.get_by_role("alert").first).to_contain_text("changed since you opened it")
    screenshot(other, "wizard-changed-since-opened", docs=True)
    assert 'interval = "3h"' in path.read_text()
    other.close()


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """The directory cannot be written, for root too (chattr +i; chmod for everybody else)."""
    mode = directory.stat().st_mode
    os.chmod(directory, 0o555)
    immutable = False
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(directory)], check=True)
        immutable = True
    try:
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(directory)], check=True)
        os.chmod(directory, mode)


def test_a_read_only_config_directory_offers_the_toml_to_copy(
    empty: EmptyConsole, page: Page
) -> None:
    path = write_hand_sync(empty, "readonly")
    before = path.read_bytes()
    sign_in(page, empty)
    with read_only(empty.config / "syncs"):
        page.goto(empty.url + "/syncs/readonly/edit")
        expect(page.locator(".notice")).to_contain_text("not writable")
        page.fill('[name="interval"]', "5h")
        page.get_by_role("button", name="Save", exact=True).click()
        toml = page.locator("#toml")
        expect(toml).to_be_visible()
        copied = toml.input_value()
        screenshot(page, "wizard-read-only", docs=True)
        assert path.read_bytes() == before
    assert 'interval = "5h"' in copied
    assert "# my backup, written by hand" in copied
    assert re.search(r"^direction", copied, re.M)


def test_disable_and_delete_with_the_choice_of_links(empty: EmptyConsole, page: Page) -> None:
    path = write_hand_sync(empty, "gone")
    sign_in(page, empty)
    page.goto(empty.url + "/syncs/gone")

    # a run first, so that there is history to forget. A sync that never ran makes its first
    # run on its own within seconds of being added: that one is waited for first, or it could
    # start after the Run now run below and still be writing while the sync is deleted
    def first_run() -> int | None:
        sync = empty.syncs()["gone"]
        done = sync["last_run"] is not None and sync["state"] != "running"
        return int(sync["last_run"]["id"]) if done else None

    before = wait_until(first_run, 120, "the first run of gone")

    def ran() -> bool:
        sync = empty.syncs()["gone"]
        return (sync.get("last_run") or {}).get("id", 0) > before and sync["state"] != "running"

    page.get_by_role("button", name="Run now").click()
    wait_until(ran, 60, "a run of gone")
    page.goto(empty.url + "/syncs/gone")
    page.locator("#manage").get_by_role("link", name="Preview, disable or enable").click()
    page.get_by_role("button", name="Disable").click()
    expect(page.locator(".notice")).to_contain_text("Disabled gone")
    assert "enabled = false" in path.read_text()
    wait_until(lambda: empty.syncs()["gone"]["state"] == "paused", 60, "disabled")
    page.goto(empty.url + "/syncs/gone/delete")
    expect(page.get_by_label(re.compile("Keep them"))).to_be_checked()
    page.get_by_label(re.compile("Forget them")).check()
    screenshot(page, "wizard-delete", docs=True)
    page.get_by_role("button", name="Delete gone").click()
    expect(page.locator(".notice")).to_contain_text(
        "Deleted gone; its links and history were forgotten"
    )
    assert not path.exists()
    wait_until(lambda: "gone" not in empty.syncs(), 60, "removed")
    # forgotten means forgotten: no link, journal entry or run of it is left in the database
    with contextlib.closing(sqlite3.connect(empty.state / "syncd.db")) as db:
        for table in ("link", "journal", "run", "sync_state"):
            rows = db.execute(f"SELECT COUNT(*) FROM {table} WHERE sync = 'gone'").fetchone()
            assert rows == (0,), table
