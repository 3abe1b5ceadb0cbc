"""The console's sync page in a real Chromium, against a real daemon on the Xero and Salesflare
sandboxes (tests/browser_support.py): settings, fields, rules, runs with their chart, the health
view (an excluded contact with its reason; Retry now), and "why did this contact not sync?".

Screenshots of the page go to the screenshot directory (docs/console/ with SYNCD_SCREENSHOTS).
"""

from __future__ import annotations

import re

from browser_support import (
    HOSTILE,
    ConsoleDaemon,
    browser,
    console,
    http_json,
    page,
    screenshot,
    sign_in,
)
from playwright.sync_api import Browser, Locator, Page, expect

from syncd.testing.daemon import wait_until

__all__ = ["browser", "console", "page"]  # the fixtures, for pytest

SYNC = "xero-salesflare"
PATH = f"/syncs/{SYNC}"
#: an address syncd takes (it has the shape of one) and Salesflare refuses (no such domain)
REFUSED = "refused@bad_domain.com"


def open_sync_page(page: Page, console: ConsoleDaemon, query: str = "") -> None:
    sign_in(page, console, PATH)
    if query:
        page.goto(console.url + PATH + query)


def runs(console: ConsoleDaemon) -> list[dict[str, object]]:
    return list(console.daemon.get(f"/api/v1/syncs/{SYNC}/runs")["runs"])


def run_finished(console: ConsoleDaemon, run_id: int) -> bool:
    # over as the daemon publishes it, not just in the history (which says so before the run
    # lets go of the sync: a retry's run started right after would not start)
    return console.daemon.run_over(SYNC, run_id) is not None


def test_the_sync_page_shows_settings_fields_rules_and_runs(
    console: ConsoleDaemon, page: Page
) -> None:
    open_sync_page(page, console)
    expect(page.get_by_role("heading", name=SYNC, level=1)).to_be_visible()
    settings = page.locator("#settings")
    expect(settings).to_contain_text(
        "Two-way: changes made in A (xero) or in B (salesflare) travel to the other."
    )
    expect(settings).to_contain_text("Runs every hour.")
    expect(settings).to_contain_text("A contact deleted on one side is left alone on the other.")
    email_row = page.locator("table.mapping tr", has=page.locator("code", has_text="EmailAddress"))
    expect(email_row).to_contain_text("⇄")
    expect(email_row).to_contain_text("both ways")
    expect(email_row).to_contain_text("default")
    expect(page.locator("#rules")).to_contain_text("No rules: every contact travels.")
    first_run = min(int(str(r["id"])) for r in runs(console))
    first = page.locator(f'#history tr.run[data-run-id="{first_run}"]')
    expect(first).to_contain_text("Succeeded")
    chart = page.locator("#history svg.runs-chart")
    expect(chart).to_be_visible()
    expect(chart.locator("rect.bar.created").first).to_be_attached()
    screenshot(page, "sync-page", docs=True)
    page.set_viewport_size({"width": 390, "height": 844})
    expect(page.get_by_role("button", name="Run now")).to_be_visible()
    screenshot(page, "sync-page-phone")


def test_the_health_view_finds_an_excluded_contact_with_its_reason(
    console: ConsoleDaemon, page: Page
) -> None:
    open_sync_page(page, console)
    health = page.locator("#health")
    expect(health.locator(".tile-excluded")).to_contain_text("1 excluded")
    health.locator(".tile-excluded a").click()
    row = page.locator("#list-excluded tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("A (xero)")
    expect(row).to_contain_text("no email address: syncd matches contacts by email")
    screenshot(page, "sync-health")
    # its record id leads to the explanation
    row.locator("a").click()
    verdict = page.locator("#explain article.contact .summary")
    expect(verdict).to_contain_text("excluded (side a (xero) record")
    expect(page.locator("#explain article.contact")).to_have_attribute("data-status", "excluded")


def test_a_contact_looked_up_by_email_gets_the_right_explanation(
    console: ConsoleDaemon, page: Page
) -> None:
    open_sync_page(page, console)
    page.get_by_label("Email address or record id").fill("Hostile@Example.com")
    page.get_by_role("button", name="Explain", exact=True).click()
    contact = page.locator("#explain article.contact")
    expect(contact).to_have_attribute("data-status", "in_sync")
    expect(contact).to_contain_text("in sync: side a (xero) record")
    expect(contact).to_contain_text("side b (salesflare) record")
    first_run = min(int(str(r["id"])) for r in runs(console))
    expect(contact).to_contain_text(f"linked since run {first_run} (")
    expect(contact.locator("table.live-values")).to_have_count(0)  # no API calls unasked
    # the live values, side by side: the hostile name is text, and runs nothing
    page.get_by_role("button", name="Explain with live values").click()
    live = page.locator("#explain table.live-values")
    expect(live).to_be_visible()
    first_name = live.locator("tr", has=page.locator("th", has_text="first_name"))
    expect(first_name.locator("td").nth(0)).to_have_text(HOSTILE)
    expect(first_name.locator("td").nth(1)).to_have_text(HOSTILE)
    expect(first_name).to_have_class("same")
    expect(page.locator("#explain img")).to_have_count(0)
    screenshot(page, "sync-explain-live", docs=True)
    # someone syncd never saw
    page.get_by_label("Email address or record id").fill("nobody@example.com")
    page.get_by_role("button", name="Explain", exact=True).click()
    expect(page.locator("#explain .verdict")).to_contain_text("syncd knows no contact")


#: the live notice after a retry: the form's answer, or, when the retry's run was quicker than
#: the test, the event of that run's end (which replaces the answer)
RETRIED = re.compile(rf"1 record retried by run (\d+), started now|Run (\d+) of {SYNC}: partial")


def retried_run(notice: Locator, after: int) -> int:
    """The id of the run a retry started, once the notice names a run newer than ``after``."""

    def named() -> int | None:
        found = RETRIED.search(notice.inner_text())
        run = int(found.group(1) or found.group(2)) if found else None
        return run if run is not None and run > after else None

    return wait_until(named, 120, "the notice of the retry's run")


def test_retry_now_retries_a_refused_record_and_the_run_shows_up_without_a_reload(
    console: ConsoleDaemon, page: Page
) -> None:
    xero = console.urls["xero"]
    http_json(
        "POST",
        f"{xero}/_sandbox/xero/contacts",
        {"Contacts": [{"Name": "Refused Person", "FirstName": "Refused", "EmailAddress": REFUSED}]},
    )
    run_id = console.daemon.post(f"/api/v1/syncs/{SYNC}/trigger")["run_id"]
    wait_until(lambda: run_finished(console, run_id), 300, "the run that is refused")
    open_sync_page(page, console)
    failing = page.locator("#list-failed tbody tr", has_text=REFUSED)
    expect(failing).to_contain_text("salesflare refused the create")
    expect(failing).to_contain_text("must be a valid email")
    expect(failing.locator("td").nth(4)).to_have_text("1")  # attempts
    screenshot(page, "sync-failing", docs=True)
    page.get_by_role("button", name=f"Retry now {REFUSED}").click()
    notice = page.locator("#live")
    retry_run = retried_run(notice, run_id)
    # the retry's run appears in the history as it finishes, without a reload
    expect(page.locator(f'#history tr.run[data-run-id="{retry_run}"]')).to_contain_text(
        "Partly succeeded"
    )
    failing = page.locator("#list-failed tbody tr", has_text=REFUSED)
    expect(failing.locator("td").nth(4)).to_have_text("1")  # refused again: from the first step
    health = console.daemon.get(f"/api/v1/syncs/{SYNC}/health")
    [refused] = [i for i in health["failing"] if i["email"] == REFUSED]
    assert refused["attempts"] == 1 and refused["next_attempt_at"]
    # and all of them at once
    page.get_by_role("button", name=re.compile(r"Retry all 1 failing now")).click()
    all_run = retried_run(notice, retry_run)
    expect(page.locator(f'#history tr.run[data-run-id="{all_run}"]')).to_contain_text(
        "Partly succeeded"
    )
    screenshot(page, "sync-retried")


def test_retry_all_works_without_javascript(console: ConsoleDaemon, browser: Browser) -> None:
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        open_sync_page(page, console)
        before = {r["id"] for r in runs(console)}
        page.get_by_role("button", name=re.compile(r"Retry all \d+ failing now")).click()
        # a plain form post that comes back to the health view with a notice
        expect(page.locator(".notice")).to_contain_text("retried by run")
        assert page.url.endswith(PATH + "#health")
        started = [r for r in runs(console) if r["id"] not in before]
        assert started and started[0]["trigger"] == "api"
        wait_until(lambda: run_finished(console, int(str(started[0]["id"]))), 300, "the run")
    finally:
        context.close()


def test_a_retry_without_the_csrf_token_is_refused(console: ConsoleDaemon, page: Page) -> None:
    open_sync_page(page, console)
    answer = page.request.post(
        console.url + PATH + "/retry",
        form={"side": "a", "record_id": "x"},
        headers={"Accept": "application/json"},
    )
    assert answer.status == 403
    assert "CSRF" in answer.json()["error"]["message"]


def test_a_sync_that_needs_authorisation_says_what_to_do(
    console: ConsoleDaemon, page: Page
) -> None:
    sign_in(page, console, "/syncs/xero-login")
    message = page.locator("#sync-head .message")
    expect(message).to_contain_text("This sync needs authorisation.")
    expect(page.get_by_role("link", name="Connect to Xero")).to_have_attribute(
        "href", "/syncs/xero-login/connect/a"
    )
    screenshot(page, "sync-needs-auth")


def test_an_unknown_sync_is_a_404_page(console: ConsoleDaemon, page: Page) -> None:
    sign_in(page, console)
    answer = page.goto(console.url + "/syncs/nope")
    assert answer is not None and answer.status == 404
    expect(page.locator("main")).to_contain_text("There is no sync named 'nope'.")
