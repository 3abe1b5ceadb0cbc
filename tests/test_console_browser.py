"""The web console in a real Chromium (Playwright), on a real daemon with the Xero and Salesflare
sandboxes (tests/browser_support.py). Each test leaves a screenshot of what it saw."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from browser_support import (
    HELD_BATCH,
    HELD_RECORDS,
    HOSTILE,
    ConsoleDaemon,
    browser,
    console,
    page,
    screenshot,
    sign_in,
)
from playwright.sync_api import Browser, Page, expect

from syncd.testing.daemon import wait_until

__all__ = ["browser", "console", "page"]  # the fixtures, for pytest


def card(page: Page, name: str) -> object:
    return page.locator(f'li[data-sync="{name}"]')


def test_sign_in_with_the_token_shows_every_sync_with_its_apps_and_state(
    console: ConsoleDaemon, page: Page
) -> None:
    page.goto(console.url + "/")
    expect(page).to_have_url(re.compile(r"/signin$"))
    expect(page.get_by_role("heading", name="Sign in to syncd")).to_be_visible()
    screenshot(page, "signin", docs=True)
    page.get_by_label("API token").fill("not-the-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not the API token")
    sign_in(page, console)
    for name in ("xero-salesflare", "xero-login", "held"):
        expect(page.locator(f'li[data-sync="{name}"] h2')).to_have_text(name)
    both = page.locator('li[data-sync="xero-salesflare"]')
    expect(both.locator(".app-name").nth(0)).to_contain_text("Xero")
    expect(both.locator(".app-name").nth(1)).to_contain_text("Salesflare")
    expect(both.locator(".account").nth(0)).to_have_text("Custom Connection")
    expect(both.locator(".arrow")).to_have_text("⇄")
    expect(both.locator('[data-field="state-word"]')).to_have_text("Idle")
    expect(both.locator('[data-field="last-run"] .outcome')).to_have_text("Succeeded")
    expect(both.locator('[data-field="next-run"]')).to_contain_text("in ")
    login = page.locator('li[data-sync="xero-login"]')
    expect(login.locator(".arrow")).to_have_text("→")
    expect(login.locator('[data-field="state-word"]')).to_have_text("Needs authorisation")
    # the state is a colour too: the card's border and the badge take the state's colour
    idle = both.evaluate("el => getComputedStyle(el).borderLeftColor")
    needs = login.evaluate("el => getComputedStyle(el).borderLeftColor")
    assert idle != needs
    screenshot(page, "overview", docs=True)


def test_syncd_console_prints_a_one_time_link_that_signs_in(
    console: ConsoleDaemon, page: Page
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "syncd.cli", "--config", str(console.config), "console"],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")},
    )
    assert done.returncode == 0, done.stderr
    link = re.search(r"http://\S+/signin\?code=\S+", done.stdout)
    assert link, done.stdout
    page.goto(link.group(0))
    expect(page).to_have_url(console.url + "/")
    expect(page.locator('li[data-sync="held"]')).to_be_visible()
    # the code is gone from the address bar, and it was good for one sign-in only
    assert "code=" not in page.url
    other = page.context.browser
    assert other is not None
    fresh = other.new_context()
    try:
        again = fresh.new_page()
        again.goto(link.group(0))
        expect(again.get_by_role("alert")).to_contain_text("used already or has expired")
        screenshot(again, "signin-link-used")
    finally:
        fresh.close()
    # never in the daemon's log
    code = link.group(0).split("code=")[1]
    assert code not in console.daemon.log_text()


def test_run_now_moves_the_progress_bar_to_its_end_and_shows_the_run_without_a_reload(
    console: ConsoleDaemon, page: Page
) -> None:
    sign_in(page, console)
    held = page.locator('li[data-sync="held"]')
    before = held.locator('[data-field="last-run"]').get_attribute("data-run-id")
    # new details for every record: the run updates them all, in batches of HELD_BATCH
    console.edit_held_people("Renamed")
    console.hold()
    expect(page.locator("body")).to_have_attribute("data-live", "yes")
    page.evaluate("window.__stayed = true")
    held.get_by_role("button", name="Run now").click()
    wait_until(console.is_held, 120, "the run to hold after its first batch")
    progress = page.locator('li[data-sync="held"] [data-field="progress"]')
    expect(progress).to_be_visible()
    text = page.locator('li[data-sync="held"] [data-field="progress-text"]')
    expect(text).to_have_text(
        re.compile(rf"written {HELD_BATCH} of {HELD_RECORDS}$"), timeout=60_000
    )
    expect(held.locator('[data-field="state-word"]')).to_have_text("Running")
    expect(held.get_by_role("button", name="Run now")).to_be_disabled()
    screenshot(page, "overview-running", docs=True)
    console.release()
    expect(progress).to_have_attribute("data-done", "yes")
    expect(text).to_have_text(re.compile(rf"^finished · .* written {HELD_RECORDS} of"))
    bar = page.locator('li[data-sync="held"] [data-field="bar"]')
    assert bar.evaluate("el => el.value === el.max")
    last = page.locator('li[data-sync="held"] [data-field="last-run"]')
    expect(last).not_to_have_attribute("data-run-id", before or "")
    expect(last.locator(".outcome")).to_have_text("Succeeded")
    expect(last).to_contain_text(f"{HELD_RECORDS} written")
    expect(held.locator('[data-field="state-word"]')).to_have_text("Idle")
    assert page.evaluate("window.__stayed === true"), "the page was reloaded"
    screenshot(page, "overview-finished")


def test_pause_and_resume_change_the_state_in_place(console: ConsoleDaemon, page: Page) -> None:
    sign_in(page, console)
    sync = page.locator('li[data-sync="xero-salesflare"]')
    page.evaluate("window.__stayed = true")
    sync.get_by_role("button", name="Pause").click()
    expect(sync.locator('[data-field="state-word"]')).to_have_text("Paused")
    expect(sync.locator('[data-field="next-run"]')).to_have_text("not scheduled")
    assert console.syncs()["xero-salesflare"]["paused"] is True
    screenshot(page, "overview-paused")
    sync.get_by_role("button", name="Resume").click()
    expect(sync.locator('[data-field="state-word"]')).not_to_have_text("Paused")
    wait_until(lambda: console.syncs()["xero-salesflare"]["paused"] is False, 60, "resumed")
    assert page.evaluate("window.__stayed === true")


def test_the_buttons_work_without_javascript(console: ConsoleDaemon, browser: Browser) -> None:
    context = browser.new_context(java_script_enabled=False)
    try:
        tab = context.new_page()
        sign_in(tab, console)
        sync = tab.locator('li[data-sync="xero-salesflare"]')
        sync.get_by_role("button", name="Pause").click()
        expect(tab.locator(".notice")).to_contain_text("Paused xero-salesflare")
        expect(sync.locator('[data-field="state-word"]')).to_have_text("Paused")
        sync.get_by_role("button", name="Resume").click()
        expect(tab.locator(".notice")).to_contain_text("Resumed xero-salesflare")
        screenshot(tab, "overview-no-javascript")
    finally:
        context.close()


def test_a_hostile_name_is_shown_as_text_and_runs_nothing(
    console: ConsoleDaemon, page: Page
) -> None:
    sign_in(page, console)
    account = page.locator('li[data-sync="held"] .account').first
    expect(account).to_have_text(f"{HOSTILE}.csv")
    assert page.locator('img[src="x"]').count() == 0
    # the page fixture fails the test on any dialog (alert) or page error


def test_without_a_session_every_page_sends_to_sign_in_and_a_forged_post_is_refused(
    console: ConsoleDaemon, page: Page, browser: Browser
) -> None:
    for path in ("/", "/plugins", "/syncs/held", "/nowhere"):
        page.goto(console.url + path)
        expect(page).to_have_url(re.compile(r"/signin(\?next=.*)?$"))
    # a page on another site posting to the console: no session cookie goes along
    # (SameSite=Strict), no CSRF token: refused, and nothing paused
    sign_in(page, console)
    attacker = (
        f'<form id="f" method="post" action="{console.url}/syncs/held/pause">'
        '<input type="hidden" name="next" value="/"></form>'
    )
    evil = browser.new_context()
    try:
        # the same browser profile as the signed-in page: its cookies
        tab = page.context.new_page()
        tab.goto(console.urls["salesflare"] + "/_sandbox/switches")
        tab.set_content(attacker)
        tab.evaluate("document.getElementById('f').submit()")
        tab.wait_for_load_state()
        expect(tab.locator("h1")).to_have_text(re.compile("Signed out|Refused"))
        screenshot(tab, "forged-post-refused")
        tab.close()
    finally:
        evil.close()
    assert console.syncs()["held"]["paused"] is False
    # with the session cookie but without the CSRF token (as a script in another tab might)
    answer = page.context.request.post(
        console.url + "/syncs/held/pause", form={"next": "/"}, max_redirects=0
    )
    assert answer.status == 403
    assert console.syncs()["held"]["paused"] is False


def test_a_session_cookie_is_useless_after_sign_out(console: ConsoleDaemon, page: Page) -> None:
    sign_in(page, console)
    cookies = page.context.cookies()
    session = next(c for c in cookies if c["name"] == "syncd_session")
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/signin$"))
    # the old cookie put back: the daemon has forgotten it
    page.context.add_cookies([session])
    page.goto(console.url + "/")
    expect(page).to_have_url(re.compile(r"/signin$"))
    events = page.context.request.get(console.url + "/api/v1/events")
    assert events.status == 401


def test_connect_xero_from_the_needs_auth_card_through_the_consent_page(
    console: ConsoleDaemon, page: Page
) -> None:
    sign_in(page, console)
    login = page.locator('li[data-sync="xero-login"]')
    expect(login.locator('[data-field="message"]')).to_contain_text("needs authorisation")
    screenshot(page, "needs-auth", docs=True)
    login.get_by_role("link", name="Connect to Xero").click()
    # the sandbox's consent page, then back to the daemon's /oauth/callback
    expect(page.get_by_role("heading", name="Xero sandbox")).to_be_visible()
    screenshot(page, "xero-consent", docs=True)
    page.get_by_role("button", name="Allow access").click()
    expect(page).to_have_url(re.compile(r"/oauth/callback\?"))
    callback = page.url
    expect(page.get_by_role("heading", name="Connected")).to_be_visible()
    expect(page.locator(".ok")).to_contain_text("Authorised Xero organisation")
    screenshot(page, "connected")
    page.get_by_role("link", name="Continue to the overview").click()
    expect(page).to_have_url(console.url + "/")
    wait_until(
        lambda: (
            (s := console.syncs()["xero-login"])["state"] == "idle"
            and s["last_run"]["outcome"] == "success"
        ),
        180,
        "xero-login to run with its new tokens",
    )
    expect(login.locator('[data-field="state-word"]')).to_have_text("Idle")
    # a callback replayed (the same state again) is refused
    page.goto(callback)
    expect(page.locator("h1")).to_have_text("Bad request")


def test_the_plugins_page_lists_distributions_connectors_and_sandboxes(
    console: ConsoleDaemon, page: Page
) -> None:
    sign_in(page, console)
    page.get_by_role("link", name="Plugins").click()
    expect(page).to_have_url(console.url + "/plugins")
    row = page.locator("tr", has=page.locator("th", has_text="xero"))
    expect(row).to_contain_text("syncd-xero")
    expect(row).to_contain_text("0.1.0")
    expect(row.locator("td").nth(2)).to_have_text("xero")  # its connectors
    expect(row.locator("td").nth(3)).to_have_text("xero")  # its sandboxes
    screenshot(page, "plugins", docs=True)


def test_on_a_phone_in_dark_mode_the_overview_fits_and_is_keyboard_navigable(
    console: ConsoleDaemon, browser: Browser
) -> None:
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, color_scheme="dark", is_mobile=True
    )
    try:
        tab = context.new_page()
        sign_in(tab, console)
        # nothing wider than the screen
        assert tab.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        background = tab.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(21, 23, 26)", background
        # the first Tab reaches the skip link, the next ones the navigation and the buttons
        tab.keyboard.press("Tab")
        assert tab.evaluate("document.activeElement.textContent") == "Skip to content"
        seen = []
        for _ in range(12):
            tab.keyboard.press("Tab")
            seen.append(tab.evaluate("document.activeElement.textContent.trim()"))
        assert "Plugins" in seen and "Run now" in seen, seen
        screenshot(tab, "overview-phone-dark", docs=True)
    finally:
        context.close()
