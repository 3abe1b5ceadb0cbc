"""Undo a run from its page in a real Chromium (issue 15): the run's changes, the dry run, the
confirmation, and the contact's values back as they were; a daemon on CSV files."""

from __future__ import annotations

from pathlib import Path

from browser_support import browser, page, screenshot, sign_in
from playwright.sync_api import Page, expect
from undo_support import delete_from_a, finished, phones

from syncd.testing.daemon import wait_until

from .test_console_history import Console, console

__all__ = ["browser", "console", "page"]  # the fixtures, for pytest


def test_undo_a_run_from_its_page(console: Console, page: Page, tmp_path: Path) -> None:
    data = tmp_path / "data"
    before = {f"p{i}@x.com": f"+44 20 7946 2{i:03d}" for i in range(10)}
    # a held deletion too, for the review section's picture
    delete_from_a(data, "p7@x.com")
    console.process.post("/api/v1/syncs/s/trigger", {"full": True})
    wait_until(lambda: finished(console.process, 2), 120, "the second run")
    before.pop("p7@x.com")
    sign_in(page, console, "/syncs/s")  # type: ignore[arg-type]
    expect(page.get_by_role("heading", name="Deletions held for review (1)")).to_be_visible()
    screenshot(page, "sync-review", docs=True)

    page.get_by_role("link", name="1", exact=True).first.click()
    expect(page.get_by_role("heading", name="Run 1 of s")).to_be_visible()
    expect(page.locator("#changes-table tbody tr")).to_have_count(10)
    screenshot(page, "run-changes", docs=True)

    page.get_by_role("button", name="Undo this run…").click()
    expect(page.get_by_role("heading", name="Would be restored (10)")).to_be_visible()
    screenshot(page, "run-undo-preview", docs=True)
    assert {k: v for k, v in phones(data / "b.csv").items() if k in before} != before

    page.get_by_role("button", name="Undo run 1 now").click()
    expect(page.locator("#undo-result")).to_contain_text("Run 1 undone")
    expect(page.locator("#undo-result")).to_contain_text("restored")
    screenshot(page, "run-undone", docs=True)
    assert {k: v for k, v in phones(data / "b.csv").items() if k in before} == before

    page.goto(console.url + "/syncs/s?record=p4%40x.com#explain")
    expect(page.locator("#timeline tbody tr")).to_have_count(2)
    page.locator("#explain").scroll_into_view_if_needed()
    screenshot(page, "record-timeline", docs=True)
