"""The journal, undo and review through the local API of a real daemon (issue 15): real HTTP
on 127.0.0.1, CSV files, the daemon's own SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from undo_support import csv_daemon, delete_from_a, finished, phones

from syncd.store.lock import SyncLock
from syncd.testing.daemon import DaemonProcess, wait_until


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    with csv_daemon(tmp_path) as process:
        yield process


def test_changes_paged_undo_and_its_errors_through_the_api(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    before = {f"p{i}@x.com": f"+44 20 7946 2{i:03d}" for i in range(10)}  # before the run
    [run] = daemon.get("/api/v1/syncs/s/runs")["runs"]
    page = daemon.get(f"/api/v1/syncs/s/changes?run={run['id']}&limit=3&offset=3")
    assert page["total"] == 10 and len(page["changes"]) == 3
    whole = daemon.get(f"/api/v1/syncs/s/changes?run={run['id']}&limit=10")["changes"]
    assert [c["id"] for c in whole[3:6]] == [c["id"] for c in page["changes"]]
    assert {c["fields"][0]["field"] for c in whole} == {"phone"}
    one = daemon.get("/api/v1/syncs/s/changes?record=p4@x.com")["changes"]
    assert [f["before"] for c in one for f in c["fields"]] == [before["p4@x.com"]]

    shown = daemon.post("/api/v1/syncs/s/undo", {"run_id": run["id"], "dry_run": True})
    assert shown["outcome"] == "dry_run" and len(shown["restored"]) == 10
    assert phones(data / "b.csv") != before

    client = daemon.client()
    status, body = client.request("POST", "/api/v1/syncs/s/undo", {"run_id": 999})
    assert status == 404 and "no run 999" in body["error"]["message"]
    status, body = client.request("POST", "/api/v1/syncs/s/undo", {"run_id": "one"})
    assert status == 400 and body["error"]["code"] == "bad_request"
    status, body = client.request("GET", "/api/v1/syncs/s/changes?since=soon")
    assert status == 400
    lock = SyncLock(tmp_path / "state", "s")
    lock.acquire()
    try:
        status, body = client.request("POST", "/api/v1/syncs/s/undo", {"run_id": run["id"]})
    finally:
        lock.release()
    assert status == 409 and body["error"]["code"] == "already_running"

    undone = daemon.post("/api/v1/syncs/s/undo", {"run_id": run["id"]})
    assert undone["outcome"] == "success" and undone["counts"]["restored_fields"] == 10
    assert phones(data / "b.csv") == before
    again = daemon.post("/api/v1/syncs/s/undo", {"run_id": run["id"]})
    assert again["counts"]["restored_fields"] == 0 and len(again["skipped"]) == 10


def test_review_through_the_api(daemon: DaemonProcess, tmp_path: Path) -> None:
    data = tmp_path / "data"
    delete_from_a(data, "p2@x.com")
    daemon.post("/api/v1/syncs/s/trigger", {"full": True})
    wait_until(lambda: finished(daemon, 2), 120, "the second run")
    [held] = daemon.get("/api/v1/syncs/s/review")["held"]
    assert held["email"] == "p2@x.com" and held["survivor_side"] == "b"
    assert "p2@x.com" in phones(data / "b.csv")
    client = daemon.client()
    status, body = client.request("POST", "/api/v1/syncs/s/review", {"approve": [held["id"] + 7]})
    assert status == 404 and "no held deletion" in body["error"]["message"]
    status, _ = client.request("POST", "/api/v1/syncs/s/review", {})
    assert status == 400
    decided = daemon.post("/api/v1/syncs/s/review", {"approve": "all"})
    assert [a["email"] for a in decided["approved"]] == ["p2@x.com"]
    assert "p2@x.com" not in phones(data / "b.csv")
    assert daemon.get("/api/v1/syncs/s/review")["held"] == []
