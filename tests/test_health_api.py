"""The health view, "Retry now" and "why did this contact not sync?" through a real daemon's API
and the real ``syncd explain`` command, on CSV files (127.0.0.1, a free port).

The sync ``crm-news`` has one contact of each kind: Ann syncs; a row without email is excluded;
Bob's tags match no rule of a-to-b (filtered out); Twin's email is held by two records on side b
(ambiguous); a broken row cannot be read (failing, retried with backoff).
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import SYNCD, cli_env

from syncd.daemon.client import ApiError
from syncd.testing.daemon import DaemonProcess, free_port, wait_until, write_daemon_config

SYNC = "crm-news"
CRM = """id,email,first_name,tags
c1,ann@example.com,Ann,customer
c2,,Nomail,customer
c3,bob@example.com,Bob,lead
c4,twin@example.com,Twin,customer
c5,broken@example.com
"""
NEWS = """id,email,first_name,tags
n1,twin@example.com,T1,
n2,TWIN@example.com,T2,
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DaemonProcess, Path]]:
    root = tmp_path_factory.mktemp("health-api")
    config, state, data = root / "config", root / "state", root / "data"
    data.mkdir()
    listen = f"127.0.0.1:{free_port()}"
    write_daemon_config(config, listen, state, shutdown_deadline="10s")
    (data / "crm.csv").write_text(CRM)
    (data / "news.csv").write_text(NEWS)
    (config / "syncs" / f"{SYNC}.toml").write_text(
        textwrap.dedent(
            f"""
            interval = "1h"
            [a]
            connector = "csv"
            path = "{data / "crm.csv"}"
            [b]
            connector = "csv"
            path = "{data / "news.csv"}"
            [[rules.a-to-b]]
            if = [ {{ field = "tags", op = "contains", value = "customer" }} ]
            """
        )
    )
    daemon = DaemonProcess(config, state, listen)
    with daemon:
        daemon.wait_ready()
        wait_until(lambda: finished(daemon, 1), 120, "the first run")
        yield daemon, config
        log = daemon.log_text()
    assert "Traceback" not in log, log[-5000:]


@pytest.fixture
def daemon(setup: tuple[DaemonProcess, Path]) -> DaemonProcess:
    return setup[0]


def finished(daemon: DaemonProcess, runs: int) -> bool:
    listed = daemon.get(f"/api/v1/syncs/{SYNC}/runs")["runs"]
    done = len(listed) >= runs and all(r["outcome"] != "running" for r in listed)
    # and published: the history says a run finished before it lets go of the sync
    return done and daemon.not_running(SYNC)


def explain(daemon: DaemonProcess, record: str, live: bool = False) -> dict[str, Any]:
    from urllib.parse import quote

    query = f"record={quote(record)}" + ("&live=true" if live else "")
    return dict(daemon.get(f"/api/v1/syncs/{SYNC}/explain?{query}"))


def test_the_health_view_counts_and_lists_each_kind_with_its_reason(daemon: DaemonProcess) -> None:
    health = daemon.get(f"/api/v1/syncs/{SYNC}/health")
    assert health["counts"] == {
        "in_sync": 1,
        "failing": 1,
        "ambiguous": 3,
        "excluded": 1,
        "filtered": 1,
    }
    [excluded] = health["excluded"]
    assert excluded["record_id"] == "c2" and "no email address" in excluded["reason"]
    [filtered] = health["filtered"]
    assert filtered["record_id"] == "c3" and "tags contains customer" in filtered["reason"]
    assert {i["record_id"] for i in health["ambiguous"]} == {"c4", "n1", "n2"}
    [failing] = health["failing"]
    assert failing["record_id"] == "line-6" and failing["attempts"] == 1
    assert "unreadable" in failing["reason"] and failing["next_attempt_at"]


def test_explain_by_email_finds_the_linked_contact_and_the_run_that_linked_it(
    daemon: DaemonProcess,
) -> None:
    result = explain(daemon, "ANN@example.com")
    assert result["found"] and result["by"] == "email"
    [contact] = result["contacts"]
    assert contact["status"] == "in_sync"
    assert contact["sides"]["a"]["record_id"] == "c1" and contact["sides"]["b"]["record_id"]
    assert contact["link"]["linked_run"] == 1
    assert "linked since run 1" in contact["summary"]


def test_explain_by_id_tells_excluded_filtered_and_ambiguous_with_the_reason(
    daemon: DaemonProcess,
) -> None:
    excluded = explain(daemon, "c2")["contacts"][0]
    assert excluded["status"] == "excluded" and "no email address" in excluded["summary"]
    filtered = explain(daemon, "bob@example.com")["contacts"][0]
    assert filtered["status"] == "filtered"
    assert "IF tags contains customer THEN sync it" in filtered["summary"]
    twins = explain(daemon, "twin@example.com")["contacts"]
    assert {c["status"] for c in twins} == {"ambiguous"}
    assert any("n1" in c["summary"] and "n2" in c["summary"] for c in twins)


def test_explain_with_live_values_puts_both_sides_side_by_side(daemon: DaemonProcess) -> None:
    contact = explain(daemon, "bob@example.com", live=True)["contacts"][0]
    live = contact["live"]
    assert live["sides"]["a"]["found"] and not live["sides"]["b"]["found"]
    rows = {row["key"]: row for row in live["fields"]}
    assert rows["first_name"]["a"] == "Bob" and rows["first_name"]["b"] is None


def test_explain_refuses_a_missing_or_empty_record_and_a_bad_live(daemon: DaemonProcess) -> None:
    for query in ("", "?record=", "?record=%20", "?record=x&live=maybe", "?record=a&record=b"):
        with pytest.raises(ApiError) as caught:
            daemon.get(f"/api/v1/syncs/{SYNC}/explain{query}")
        assert caught.value.status == 400, query
        assert caught.value.code == "bad_request"


def test_retry_now_resets_the_backoff_and_starts_a_run(daemon: DaemonProcess) -> None:
    runs = len(daemon.get(f"/api/v1/syncs/{SYNC}/runs")["runs"])
    held = daemon.post(f"/api/v1/syncs/{SYNC}/retry", {"run": False})
    assert held["retried"] == 1 and held["run_id"] is None
    [failing] = daemon.get(f"/api/v1/syncs/{SYNC}/health")["failing"]
    assert failing["attempts"] == 0 and failing["next_attempt_at"] is None
    done = daemon.post(
        f"/api/v1/syncs/{SYNC}/retry",
        {"records": [{"side": "a", "record_id": "line-6"}, {"side": "b", "record_id": "n9"}]},
    )
    assert done["retried"] == 1 and done["run_id"] is not None
    assert done["not_failing"] == [{"side": "b", "record_id": "n9"}]
    assert f"run {done['run_id']}" in done["message"]
    wait_until(lambda: finished(daemon, runs + 1), 120, "the retry's run")
    # the row is still broken: refused again, from the first backoff step
    [failing] = daemon.get(f"/api/v1/syncs/{SYNC}/health")["failing"]
    assert failing["attempts"] == 1 and failing["next_attempt_at"]


def test_retry_refuses_a_bad_body(daemon: DaemonProcess) -> None:
    for body in (
        {"records": "all"},
        {"records": [{"side": "c", "record_id": "x"}]},
        {"records": [{"side": "a"}]},
        {"run": "yes"},
        {"everything": True},
    ):
        with pytest.raises(ApiError) as caught:
            daemon.post(f"/api/v1/syncs/{SYNC}/retry", body)
        assert caught.value.status == 400, body


def syncd_explain(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SYNCD, "--config", str(config), "explain", SYNC, *args],
        capture_output=True,
        text=True,
        env=cli_env(),
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def test_the_cli_explains_as_the_api_does(setup: tuple[DaemonProcess, Path]) -> None:
    daemon, config = setup
    done = syncd_explain(config, "bob@example.com", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["contacts"] == explain(daemon, "bob@example.com")["contacts"]
    text = syncd_explain(config, "c2")
    assert text.returncode == 0, text.stderr
    assert "  Excluded (side a (csv) record c2): no email address" in text.stdout
    live = syncd_explain(config, "ann@example.com", "--live")
    assert live.returncode == 0, live.stderr
    assert "  In sync: side a (csv) record c1 ⇄ side b (csv) record" in live.stdout
    assert "first_name" in live.stdout and "Ann" in live.stdout


def test_the_cli_exit_status_tells_unknown_and_bad_input(setup: tuple[DaemonProcess, Path]) -> None:
    _, config = setup
    unknown = syncd_explain(config, "nobody@example.com")
    assert unknown.returncode == 1 and "knows no contact" in unknown.stdout
    empty = syncd_explain(config, " ")
    assert empty.returncode == 2 and empty.stderr.startswith("error: ")
    assert "Traceback" not in empty.stderr
    other = subprocess.run(
        [*SYNCD, "--config", str(config), "explain", "nope", "x"],
        capture_output=True,
        text=True,
        env=cli_env(),
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert other.returncode == 2 and "no sync named 'nope'" in other.stderr
