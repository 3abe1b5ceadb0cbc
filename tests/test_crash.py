"""Rule 4: ``kill -9`` at any instant, then another run: no duplicate, no lost update, an intact
database. A real ``syncd sync`` process merges two CSV files of 500 contacts each and is killed
20 times at seeded crash points (``SYNCD_TEST_CRASH_AT``: the Nth journal commit, send or
outcome commit; never a timer); between kills a person edits the files. Wherever the kills
land, the final state must be the same.

Then issue 21's scenario (a kill inside the first merge's write window, then an edit on the
other side), and a slice of the crash soak (``syncd.testing.soak``; ``make soak`` runs it at
length)."""

from __future__ import annotations

import asyncio
import csv
import random
import signal
import sqlite3
import subprocess
from pathlib import Path

import psycopg
import pytest
from pg_support import new_database
from support import SYNCD, cli_env, write_sync

from syncd.testing.soak import soak

COUNT = 500
SHARED = 250
KILLS = 20


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["email", "first_name", "city", "phone"])
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def edit_city(path: Path, email: str, city: str) -> bool:
    rows = read_csv(path)
    hit = False
    for row in rows:
        if row["email"] == email:
            row["city"] = city
            hit = True
    if hit:
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return hit


def _sync_once(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``syncd sync``; on PostgreSQL a killed run's claim is held until its lease runs out, and
    a run that finds it busy (exit 3) is tried again: a wait on the claim, not on a clock."""
    while True:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 3 or "already running" not in done.stderr:
            return done


@pytest.mark.parametrize("store_kind", ["sqlite", "postgresql"])
def test_kill_9_during_a_merge_loses_nothing_and_duplicates_nothing(
    tmp_path: Path, store_kind: str
) -> None:
    rng = random.Random(20261123)
    a_rows = [
        {"email": f"p{i}@example.com", "first_name": f"A{i}", "city": "", "phone": ""}
        for i in range(COUNT)
    ]
    b_rows = [
        {
            "email": f"p{i}@example.com" if i < SHARED else f"q{i}@example.com",
            "first_name": f"B{i}",
            "city": "Leeds",
            "phone": f"+4420794{i:05d}",
        }
        for i in range(COUNT)
    ]
    a_file, b_file = tmp_path / "a.csv", tmp_path / "b.csv"
    write_csv(a_file, a_rows)
    write_csv(b_file, b_rows)
    write_sync(
        tmp_path / "config",
        "crash",
        f"""
        winner = "a"
        [a]
        connector = "csv"
        path = "{a_file}"
        batch_size = 10
        [b]
        connector = "csv"
        path = "{b_file}"
        batch_size = 10
        """,
    )
    state = tmp_path / "state"
    url = None
    if store_kind == "postgresql":
        url = new_database()
        (tmp_path / "config" / "syncd.toml").write_text(
            f'[store]\nurl = "{url}"\nlease_timeout = "1s"\n'
        )
    command = [*SYNCD, "--config", str(tmp_path / "config"), "--state-dir", str(state)]
    env = cli_env()

    expected_city: dict[str, str] = {}
    kills = 0
    for kill in range(KILLS):
        # killed with SIGKILL at a seeded crash point (before a batch is sent, after it
        # returned, or after its outcome was committed), counted, never timed
        process = _sync_once(
            [*command, "sync", "crash"], cli_env(SYNCD_TEST_CRASH_AT=str(rng.randint(1, 60)))
        )
        kills += process.returncode == -signal.SIGKILL
        # someone edits a contact on side a while syncd is down
        email = f"p{rng.randrange(COUNT)}@example.com"
        city = f"Edited{kill}"
        if edit_city(a_file, email, city):
            expected_city[email] = city

    assert kills >= KILLS // 2, "the kills must land in the middle of real work"
    final = _sync_once([*command, "sync", "crash"], env)
    assert final.returncode == 0, final.stdout + final.stderr
    again = _sync_once([*command, "sync", "crash", "--json"], env)
    assert again.returncode == 0, again.stderr
    assert '"created_a": 0' in again.stdout and '"updated_b": 0' in again.stdout

    a_final, b_final = read_csv(a_file), read_csv(b_file)
    for rows in (a_final, b_final):
        emails = [row["email"].lower() for row in rows]
        assert len(emails) == len(set(emails)), "a duplicate was created"
        assert len(emails) == COUNT * 2 - SHARED
    b_by_email = {row["email"]: row for row in b_final}
    for email, city in expected_city.items():
        assert b_by_email[email]["city"] == city, f"the edit of {email} was lost"
    for i in range(SHARED, COUNT):
        # filled from b into a, never blanked
        a_row = next(r for r in a_final if r["email"] == f"q{i}@example.com")
        assert a_row["city"] == "Leeds"

    if url is not None:
        with psycopg.connect(url) as conn:
            links = conn.execute(
                "SELECT count(*), count(DISTINCT a_id), count(DISTINCT b_id) FROM link "
                "WHERE state = 'linked'"
            ).fetchone()
            assert links == (COUNT * 2 - SHARED,) * 3
            assert conn.execute("SELECT count(*) FROM pending_write").fetchone() == (0,)
        return
    db = sqlite3.connect(state / "syncd.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        links = db.execute(
            "SELECT count(*), count(DISTINCT a_id), count(DISTINCT b_id) FROM link "
            "WHERE state = 'linked'"
        ).fetchone()
        assert links == (COUNT * 2 - SHARED,) * 3
        assert db.execute("SELECT count(*) FROM pending_write").fetchone()[0] == 0
    finally:
        db.close()


# --- issue 21: a kill inside the first merge's write window ---------------------------------

SCENARIO_A, SCENARIO_B, SCENARIO_SHARED = 3000, 2100, 1000
FIELDS = ["email", "first_name", "last_name", "title", "city"]


def scenario_files(tmp_path: Path) -> tuple[Path, Path]:
    """Two CSVs of 3,000 and 2,100 people, 1,000 shared with differing fields: a has no title
    and its own city for the shared people, b has both."""
    a_rows = [
        {
            "email": f"p{i}@example.com" if i < SCENARIO_SHARED else f"a{i}@example.com",
            "first_name": f"First{i}",
            "last_name": f"Last{i}",
            "title": "",
            "city": f"Acity{i % 50}",
        }
        for i in range(SCENARIO_A)
    ]
    b_rows = [
        {
            "email": f"p{i}@example.com" if i < SCENARIO_SHARED else f"b{i}@example.com",
            "first_name": f"First{i}",
            "last_name": f"Last{i}",
            "title": f"Btitle{i}",
            "city": f"Bcity{i % 40}",
        }
        for i in range(SCENARIO_B)
    ]
    a_file, b_file = tmp_path / "a.csv", tmp_path / "b.csv"
    write_rows(a_file, a_rows, FIELDS)
    write_rows(b_file, b_rows, FIELDS)
    write_sync(
        tmp_path / "config",
        "crash",
        f"""
        winner = "a"
        [a]
        connector = "csv"
        path = "{a_file}"
        batch_size = 100
        [b]
        connector = "csv"
        path = "{b_file}"
        batch_size = 100
        """,
    )
    return a_file, b_file


def write_rows(path: Path, rows: list[dict[str, str]], fields: list[str]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def test_an_edit_after_a_kill_inside_the_first_merge_is_an_edit_not_a_conflict(
    tmp_path: Path,
) -> None:
    """Issue 21: killed (SIGKILL, at a set crash point, not a timer) after a.csv received b's
    titles for 800 people and before those links were committed, then 20 of those titles are
    edited in b.csv: the rerun must take the edits as edits (a's titles are syncd's own
    half-finished writes, journaled), not let a "win" them back as a conflict."""
    a_file, b_file = scenario_files(tmp_path)
    state = tmp_path / "state"
    command = [*SYNCD, "--config", str(tmp_path / "config"), "--state-dir", str(state)]
    # the eighth batch sent (updates of a come first): 800 rows of a rewritten, no link yet
    killed = subprocess.run(
        [*command, "sync", "crash"],
        env=cli_env(SYNCD_TEST_CRASH_AT="sent:8"),
        capture_output=True,
        timeout=600,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    a_rows = {row["email"]: row for row in read_csv(a_file)}
    written = sorted(
        (e for e, row in a_rows.items() if row["title"].startswith("Btitle")),
        key=lambda e: int(e[1:].split("@")[0]),
    )
    assert len(written) == 800
    db = sqlite3.connect(state / "syncd.db")
    try:
        assert db.execute("SELECT count(*) FROM link").fetchone()[0] == 0
        assert (
            db.execute(
                "SELECT count(*) FROM journal WHERE outcome IN ('pending', 'failed')"
            ).fetchone()[0]
            == 800
        )
    finally:
        db.close()

    # a person edits the title of 20 of those people in b.csv while syncd is down
    rng = random.Random(21)
    edited = {email: f"Edited title {n}" for n, email in enumerate(rng.sample(written, 20))}
    b_rows = read_csv(b_file)
    for row in b_rows:
        if row["email"] in edited:
            row["title"] = edited[row["email"]]
    write_rows(b_file, b_rows, list(b_rows[0]))

    rerun = subprocess.run(
        [*command, "sync", "crash", "--json"],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    a_final = {row["email"]: row for row in read_csv(a_file)}
    b_final = {row["email"]: row for row in read_csv(b_file)}
    lost = [
        e
        for e, title in edited.items()
        if (a_final[e]["title"], b_final[e]["title"])
        != (
            title,
            title,
        )
    ]
    assert not lost, f"{len(lost)} of 20 edits lost, e.g. {lost[0]}: {a_final[lost[0]]}"
    # the rest of the merge is as it would have been without the kill
    total = SCENARIO_A + SCENARIO_B - SCENARIO_SHARED
    for rows in (a_final, b_final):
        assert len(rows) == total
    assert len(read_csv(a_file)) == len(read_csv(b_file)) == total
    for i in range(SCENARIO_SHARED):
        email = f"p{i}@example.com"
        assert a_final[email]["city"] == b_final[email]["city"] == f"Acity{i % 50}"  # winner a
        if email not in edited:
            assert a_final[email]["title"] == b_final[email]["title"] == f"Btitle{i}"
    db = sqlite3.connect(state / "syncd.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert (
            db.execute(
                "SELECT count(*) FROM journal WHERE outcome IN ('pending', 'failed')"
            ).fetchone()[0]
            == 0
        )
        assert db.execute("SELECT count(*) FROM pending_write").fetchone()[0] == 0
    finally:
        db.close()


# --- the soak, a slice of it (``make soak`` runs >= 1,000 kill points per pair of apps) ------


def test_kill_points_with_edits_on_both_sides_over_csv_xero_and_salesflare() -> None:
    """60 seeded kill points (journaled / sent / committed, chosen by count, never by a clock)
    over CSV to CSV, Xero to CSV and Salesflare to CSV, both sides edited between kills: no
    duplicate, no one-sided record, no lost edit, an intact database, nothing pending, and a
    final run that writes nothing (``syncd.testing.soak``)."""
    pairs = [("csv", "csv"), ("xero", "csv"), ("salesflare", "csv")]
    counts = asyncio.run(soak(pairs, 60, seed=2026, per_episode=10))
    assert counts.kill_points >= 60
    assert set(counts.kills_by_point) == {"journaled", "sent", "committed"}
    assert counts.edits > 50 and counts.fields_checked > 300
    assert counts.ok, "\n".join(counts.problems[:10])
    assert (counts.duplicates, counts.lost_edits, counts.one_side_only) == (0, 0, 0)
    assert (counts.integrity_failures, counts.pending_left, counts.journal_left) == (0, 0, 0)
    assert counts.final_writes == 0
