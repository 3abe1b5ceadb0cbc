"""``syncd changes``, ``syncd undo`` and ``syncd review`` as a person runs them: real ``syncd``
processes over two CSV files, a real SQLite file, ``kill -9`` by crash point (issue 15)."""

from __future__ import annotations

import csv
import json
import signal
import sqlite3
import subprocess
from pathlib import Path

from support import SYNCD, cli_env, write_sync


def people(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as handle:
        return {
            row["email"]: row
            for row in csv.DictReader(handle)
            if row.get("archived", "").lower() != "true"
        }


def write_people(path: Path, rows: list[dict[str, str]]) -> None:
    columns = list(rows[0])
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)


def edit(path: Path, email: str, **changes: str) -> None:
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        if row["email"] == email:
            row.update(changes)
    write_people(path, rows)


def syncd(config: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SYNCD, "--config", str(config), "--state-dir", str(config / "state"), *args],
        capture_output=True,
        text=True,
        env=cli_env(**env),
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def setup(tmp_path: Path, count: int, extra: str = "", batch: int = 500) -> Path:
    config = tmp_path / "config"
    config.mkdir()
    write_people(
        config / "a.csv",
        [
            {"email": f"p{i}@x.com", "first_name": f"P{i}", "phone": f"+44 20 7946 1{i:03d}"}
            for i in range(count)
        ],
    )
    write_people(
        config / "b.csv",
        [
            {"email": f"p{i}@x.com", "first_name": f"P{i}", "phone": f"+44 20 7946 2{i:03d}"}
            for i in range(count)
        ],
    )
    write_sync(
        config,
        "s",
        f'winner = "a"\n{extra}\n[a]\nconnector = "csv"\npath = "a.csv"\n'
        f'[b]\nconnector = "csv"\npath = "b.csv"\nbatch_size = {batch}\n',
    )
    return config


def run_json(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert result.returncode in (0, 1), result.stderr
    data: dict[str, object] = json.loads(result.stdout)
    return data


def test_undo_the_wrong_winner_from_the_command_line(tmp_path: Path) -> None:
    config = setup(tmp_path, 50)
    original = {e: r["phone"] for e, r in people(config / "a.csv").items()}
    original_b = {e: r["phone"] for e, r in people(config / "b.csv").items()}
    assert original != original_b
    run = run_json(syncd(config, "sync", "s", "--json"))
    assert run["counts"]["updated_b"] == 50  # type: ignore[index]
    hand = {"p3@x.com": "+44 161 496 0003", "p17@x.com": "+44 161 496 0017"}
    hand["p41@x.com"] = "+44 161 496 0041"
    for email, value in hand.items():
        edit(config / "b.csv", email, phone=value)

    shown = syncd(config, "undo", "s", str(run["run_id"]), "--dry-run")
    assert shown.returncode == 0, shown.stderr
    assert "nothing was written" in shown.stdout
    assert shown.stdout.count("restore b") == 47
    assert people(config / "b.csv")["p5@x.com"]["phone"] != original_b["p5@x.com"]

    undone = run_json(syncd(config, "undo", "s", str(run["run_id"]), "--json"))
    assert undone["counts"]["restored_fields"] == 47  # type: ignore[index]
    assert {s["email"] for s in undone["skipped"]} == set(hand)  # type: ignore[union-attr]
    now = people(config / "b.csv")
    for email, value in original_b.items():
        assert now[email]["phone"] == hand.get(email, value)

    before = (config / "b.csv").read_bytes()
    again = run_json(syncd(config, "undo", "s", str(run["run_id"]), "--json"))
    assert again["counts"]["restored_fields"] == 0  # type: ignore[index]
    assert (config / "b.csv").read_bytes() == before  # a second undo writes nothing

    history = run_json(syncd(config, "changes", "s", "--record", "p5@x.com", "--json"))
    fields = [
        (c["run_id"], f["field"], f["before"], f["sent"])
        for c in history["changes"]  # type: ignore[attr-defined]
        for f in c["fields"]
    ]
    assert fields == [
        (run["run_id"], "phone", original_b["p5@x.com"], "+442079461005"),
        (undone["run_id"], "phone", "+442079461005", original_b["p5@x.com"]),
    ]
    text = syncd(config, "changes", "s", "--run", str(run["run_id"]), "--since", "1h")
    assert text.returncode == 0 and text.stdout.count("update on b") == 50


def test_kill_9_during_an_undo_then_undo_again(tmp_path: Path) -> None:
    config = setup(tmp_path, 12, batch=3)
    original_b = {e: r["phone"] for e, r in people(config / "b.csv").items()}
    run = run_json(syncd(config, "sync", "s", "--json"))
    killed = syncd(config, "undo", "s", str(run["run_id"]), SYNCD_TEST_CRASH_AT="sent:2")
    assert killed.returncode == -signal.SIGKILL
    undone = run_json(syncd(config, "undo", "s", str(run["run_id"]), "--json"))
    assert undone["counts"]["restored_fields"] == 6  # type: ignore[index]
    now = people(config / "b.csv")
    assert len(now) == 12
    assert {e: r["phone"] for e, r in now.items()} == original_b
    db = sqlite3.connect(config / "state" / "syncd.db")
    try:
        left = db.execute(
            "SELECT count(*) FROM journal WHERE outcome IN ('pending', 'failed')"
        ).fetchone()[0]
        restores = db.execute(
            "SELECT outcome, count(*), count(DISTINCT record_id) FROM journal WHERE reason = ?"
            " GROUP BY outcome ORDER BY outcome",
            (f"undo of run {run['run_id']}",),
        ).fetchall()
    finally:
        db.close()
    assert left == 0
    # every record restored once: 3 committed by the killed undo, 3 it sent (found restored
    # and settled by the next undo: superseded), 6 by the next undo
    assert restores == [("confirmed", 9, 9), ("superseded", 3, 3)]
    quiet = run_json(syncd(config, "sync", "s", "--json"))
    assert quiet["counts"]["updated_a"] == quiet["counts"]["updated_b"] == 0  # type: ignore[index]


def test_review_from_the_command_line(tmp_path: Path) -> None:
    config = setup(tmp_path, 3, extra='deletions = "review"')
    run_json(syncd(config, "sync", "s", "--json"))
    with (config / "a.csv").open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["email"] != "p1@x.com"]
    write_people(config / "a.csv", rows)
    run_json(syncd(config, "sync", "s", "--json"))
    listed = run_json(syncd(config, "review", "s", "--json"))
    [entry] = listed["held"]  # type: ignore[misc]
    assert entry["email"] == "p1@x.com" and entry["action"] == "archive"
    assert "p1@x.com" in people(config / "b.csv")
    text = syncd(config, "review", "s")
    assert "p1@x.com" in text.stdout and "archive on side b" in text.stdout
    bad = syncd(config, "review", "s", "--approve", "99")
    assert bad.returncode == 2 and "no held deletion with id 99" in bad.stderr
    done = syncd(config, "review", "s", "--approve", "--all")
    assert done.returncode == 0, done.stderr
    assert "p1@x.com" not in people(config / "b.csv")
    assert run_json(syncd(config, "review", "s", "--json"))["held"] == []


def test_bad_input_is_one_line_and_status_2(tmp_path: Path) -> None:
    config = setup(tmp_path, 1)
    for args, message in (
        (("undo", "s", "7"), "has no run 7"),
        (("changes", "s", "--since", "soon"), "--since: expected a duration"),
        (("undo", "nope", "1"), "nope"),
        (("review", "s", "3"), "need --approve or --reject"),
    ):
        result = syncd(config, *args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr
