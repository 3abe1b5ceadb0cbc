"""The console's parts of the change journal (issue 15) over plain HTTP with a signed-in session,
on a real daemon with CSV files: the run page and its undo (dry run first, then confirmed; 409
while the sync runs), a record's timeline on the sync page, and the review queue's buttons."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from console_support import page_csrf, signed_in
from undo_support import csv_daemon, delete_from_a, finished, phones

from syncd.store.lock import SyncLock
from syncd.testing.daemon import DaemonProcess, wait_until


class Console:
    def __init__(self, process: DaemonProcess, url: str) -> None:
        self.process, self.url = process, url

    def token(self) -> str:
        return self.process.token()

    def sign_in(self) -> requests.Session:
        return signed_in(self.url, self.process.token())

    def csrf(self, browser: requests.Session) -> str:
        return page_csrf(browser, self.url)


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    with csv_daemon(tmp_path) as process:
        assert process.endpoint.port is not None
        yield Console(process, f"http://127.0.0.1:{process.endpoint.port}")


def text_of(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def test_run_page_lists_its_changes_and_undoes_after_showing_the_dry_run(
    console: Console, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    before = {f"p{i}@x.com": f"+44 20 7946 2{i:03d}" for i in range(10)}
    written = phones(data / "b.csv")
    assert written != before
    [run] = console.process.get("/api/v1/syncs/s/runs")["runs"]
    browser = console.sign_in()
    token = console.csrf(browser)

    sync_page = browser.get(console.url + "/syncs/s", timeout=60)
    assert f'href="/syncs/s/runs/{run["id"]}"' in sync_page.text
    page = browser.get(console.url + f"/syncs/s/runs/{run['id']}", timeout=60)
    assert page.status_code == 200
    words = text_of(page.text)
    assert "10 writes, field by field" in words
    assert "+44 20 7946 2004 → +442079461004" in words
    assert "Undo this run" in words

    undo = console.url + f"/syncs/s/runs/{run['id']}/undo"
    # the first press shows the dry run and changes nothing
    preview = browser.post(undo, data={"csrf_token": token}, timeout=60)
    assert preview.status_code == 200
    words = text_of(preview.text)
    assert "Run 1, if undone: 10 restored." in words and "Would be restored (10)" in words
    assert 'name="confirm" value="yes"' in preview.text
    assert phones(data / "b.csv") == written
    # without the CSRF token: refused
    assert browser.post(undo, data={"confirm": "yes"}, timeout=60).status_code == 403
    # while the sync runs: 409 and a message, nothing changed
    lock = SyncLock(tmp_path / "state", "s")
    lock.acquire()
    try:
        busy = browser.post(undo, data={"csrf_token": token, "confirm": "yes"}, timeout=60)
    finally:
        lock.release()
    assert busy.status_code == 409 and "The sync is running" in busy.text
    assert phones(data / "b.csv") == written

    confirmed = browser.post(undo, data={"csrf_token": token, "confirm": "yes"}, timeout=60)
    assert confirmed.status_code == 200
    assert f"Run {run['id']} undone" in text_of(confirmed.text)
    assert "10 restored" in text_of(confirmed.text)
    assert phones(data / "b.csv") == before
    # a second undo leaves everything alone, with its reasons
    again = text_of(browser.post(undo, data={"csrf_token": token}, timeout=60).text)
    assert "Run 1, if undone: 10 skipped." in again and "Left alone (10)" in again

    # the record's timeline on the sync page: both writes, oldest first
    explained = browser.get(console.url + "/syncs/s", params={"record": "p4@x.com"}, timeout=60)
    timeline = text_of(explained.text.split('id="timeline"', 1)[1])
    first = timeline.index("+44 20 7946 2004 → +442079461004")
    second = timeline.index("→ +44 20 7946 2004")
    assert first < second
    assert browser.get(console.url + "/syncs/s/runs/999", timeout=60).status_code == 404
    assert browser.get(console.url + "/syncs/s/runs/x1", timeout=60).status_code == 404


def test_review_section_approves_one_and_rejects_the_rest(console: Console, tmp_path: Path) -> None:
    data = tmp_path / "data"
    delete_from_a(data, "p2@x.com", "p3@x.com", "p5@x.com")
    console.process.post("/api/v1/syncs/s/trigger", {"full": True})
    wait_until(lambda: finished(console.process, 2), 120, "the second run")
    browser = console.sign_in()
    token = console.csrf(browser)
    page = browser.get(console.url + "/syncs/s", timeout=60)
    assert "Deletions held for review (3)" in text_of(page.text)
    held = console.process.get("/api/v1/syncs/s/review")["held"]
    p2 = next(h for h in held if h["email"] == "p2@x.com")
    assert f'data-review-id="{p2["id"]}"' in page.text
    assert "p2@x.com" in phones(data / "b.csv")

    review = console.url + "/syncs/s/review"
    answer = browser.post(
        review, data={"csrf_token": token, "decision": "approve", "id": str(p2["id"])}, timeout=60
    )
    assert answer.status_code == 200 and "1 approved" in text_of(answer.text)
    assert "p2@x.com" not in phones(data / "b.csv")
    assert "Deletions held for review (2)" in text_of(answer.text)
    bad = browser.post(review, data={"csrf_token": token, "decision": "approve", "id": "x"})
    assert bad.status_code == 400
    answer = browser.post(
        review, data={"csrf_token": token, "decision": "reject", "all": "yes"}, timeout=60
    )
    assert "2 rejected" in text_of(answer.text)
    assert "Deletions held for review" not in answer.text
    assert {"p3@x.com", "p5@x.com"} <= set(phones(data / "b.csv"))
    assert console.process.get("/api/v1/syncs/s/review")["held"] == []


def test_the_setup_page_disables_and_enables_the_sync(console: Console, tmp_path: Path) -> None:
    """The wizard's Disable and Enable buttons: ``enabled = false`` in the sync's file, then the
    key gone again (the default), each with its notice; an unknown sync is a 404."""
    path = tmp_path / "config" / "syncs" / "s.toml"
    assert "enabled" not in path.read_text()
    browser = console.sign_in()
    token = console.csrf(browser)
    setup = browser.get(console.url + "/syncs/s/setup", timeout=60)
    assert 'action="/syncs/s/disable"' in setup.text

    def press(action: str, sync: str = "s") -> requests.Response:
        return browser.post(
            console.url + f"/syncs/{sync}/{action}",
            data={"csrf_token": token},
            headers={"Accept": "application/json"},
            timeout=60,
        )

    disabled = press("disable")
    assert disabled.json() == {
        "ok": True,
        "message": "Disabled s: it does not run until it is enabled.",
    }
    assert "enabled = false" in path.read_text()
    assert 'action="/syncs/s/enable"' in browser.get(console.url + "/syncs/s/setup").text
    wait_until(lambda: console.process.get("/api/v1/syncs/s")["state"] == "paused", 60, "paused")
    enabled = press("enable")
    assert enabled.json() == {"ok": True, "message": "Enabled s."}
    assert "enabled" not in path.read_text()
    wait_until(lambda: console.process.get("/api/v1/syncs/s")["state"] != "paused", 60, "enabled")
    for action in ("enable", "disable"):
        assert press(action, sync="nope").status_code == 404
