"""The human output of the command line: counts agree with their nouns, a duration is printed
one way everywhere, and tables have a header row (``errors`` shows an email once)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import syncd_on

from syncd.cli_output import duration, history_lines, issue_lines, plural, table, timestamp
from syncd.store import RunRow

#: every duration the human output prints has this shape
DURATION = re.compile(r"^(\d+\.\d\ds|\d+m\d\ds|\d+h\d\dm)$")


def test_plural_agrees_with_the_count() -> None:
    assert plural(1, "sync") == "1 sync"
    assert plural(0, "sync") == "0 syncs"
    assert plural(2, "record") == "2 records"
    assert plural(1, "entry") == "1 entry" and plural(3, "entry") == "3 entries"


@given(st.floats(min_value=0, max_value=10**6, allow_nan=False))
def test_every_duration_is_printed_one_way(seconds: float) -> None:
    assert DURATION.match(duration(seconds)), duration(seconds)


def test_durations_under_a_minute_have_two_decimals() -> None:
    assert [duration(s) for s in (0.4, 0.23, 0.123, 12.3)] == ["0.40s", "0.23s", "0.12s", "12.30s"]
    assert duration(125) == "2m05s" and duration(3 * 3600 + 60) == "3h01m"


def test_a_table_has_its_header_and_aligned_columns() -> None:
    lines = table([["a", "1", "x"], ["bbb", "22", "y"]], ["SIDE", "N", "WHAT"])
    assert lines == ["SIDE  N   WHAT", "a     1   x", "bbb   22  y"]


def test_errors_show_an_ambiguous_rows_email_once() -> None:
    issue = {
        "side": "a",
        "record_id": "04215895",
        "kind": "ambiguous",
        "email": "priya@marine.example",
        "reason": "priya@marine.example is held by 2 records on side a (04215895, 3f68b623); "
        "syncd will not guess",
        "next_attempt_at": None,
    }
    header, row = issue_lines([issue])
    assert header.split() == ["SIDE", "RECORD", "KIND", "EMAIL", "REASON"]
    assert row.count("priya@marine.example") == 1
    assert "is held by 2 records on side a" in row


def test_history_has_a_header_and_durations_like_everywhere_else() -> None:
    start = datetime(2026, 12, 1, 21, 42, 7)
    runs = [
        RunRow(2, "s", start, start + timedelta(seconds=0.123), "partial", False, "cli",
               {"created_a": 1, "failed": 1}, "1 record failed; see 'syncd errors'"),
        RunRow(1, "s", start, start + timedelta(seconds=61), "success", False, "daemon", {}),
    ]  # fmt: skip
    lines = history_lines(runs)
    assert lines[0].split()[:4] == ["RUN", "STARTED", "(UTC)", "OUTCOME"]
    assert " 0.12s " in lines[1] and " 1m01s " in lines[3]
    assert lines[2].strip() == "1 record failed; see 'syncd errors'"


def test_timestamps_are_utc_to_the_second() -> None:
    assert timestamp("2026-12-01T21:42:07.427616+00:00") == "2026-12-01 21:42:07Z"
    assert timestamp(datetime(2026, 12, 1, 21, 42, 7, 5)) == "2026-12-01 21:42:07Z"


# --- the commands themselves ------------------------------------------------------------------


syncd = syncd_on


def test_check_counts_one_sync_as_one_sync(example: Path) -> None:
    result = syncd(example, "check")
    assert result.returncode == 0, result.stderr
    assert "OK, 1 sync\n" in result.stdout


def test_sync_history_errors_and_links_read_well(example: Path) -> None:
    crm = example / "crm.csv"
    crm.write_text(crm.read_text() + "broken@row.example,only,three\n")
    result = syncd(example, "sync", "crm-to-accounts")
    assert result.returncode == 1
    took = re.search(r"partial in (\S+) \(run 1\)", result.stdout)
    assert took and DURATION.match(took.group(1)), result.stdout
    assert "1 record failed; see 'syncd errors'" in result.stdout
    assert "1 records" not in result.stdout

    history = syncd(example, "history", "crm-to-accounts").stdout.splitlines()
    assert history[0].split()[:4] == ["RUN", "STARTED", "(UTC)", "OUTCOME"]
    assert DURATION.match(history[1].split()[4]), history
    assert history[2].strip() == "1 record failed; see 'syncd errors'"

    errors = syncd(example, "errors", "crm-to-accounts").stdout.splitlines()
    assert errors[0].split() == ["SIDE", "RECORD", "KIND", "EMAIL", "REASON"]
    assert len(errors) >= 3  # the broken row and the row without an email
    for line in errors[1:]:
        emails = re.findall(r"[\w.+-]+@[\w.-]+\.\w+", line)
        assert len(emails) == len(set(emails)), line  # an email is shown once

    links = syncd(example, "links", "crm-to-accounts").stdout.splitlines()
    assert links[0].split() == ["A", "B", "STATE"]
    assert re.fullmatch(r"\d+ links?", links[-1])


def test_status_counts_one_sync_as_one_and_prints_durations_like_everywhere(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from syncd.daemon.commands import print_status

    print_status(
        {
            "version": "0.1.0",
            "pid": 1,
            "uptime_seconds": 46,
            "api": "127.0.0.1:8765",
            "runs_in_progress": 0,
            "syncs": [
                {
                    "name": "xero-salesflare",
                    "state": "idle",
                    "next_run_at": None,
                    "last_run": {
                        "outcome": "success",
                        "finished_at": "2026-12-01T21:42:07Z",
                        "started_at": "2026-12-01T21:42:06Z",
                        "duration_seconds": 0.123,
                    },
                }
            ],
        }
    )
    out = capsys.readouterr().out
    assert "; 1 sync, 0 running" in out
    assert "(0.12s)" in out
