"""A command run as root in another user's state directory hands it what it created.

The leftover this fixes: ``sudo syncd auth ...`` beside the systemd service (its state directory
belongs to the dynamic user), or ``docker exec syncd syncd ...`` (root, ``/data`` owned by the
container's user), left root-owned 0600 files that the daemon could not read. CI and this
machine run as root; the test needs it to chown (it says so rather than passing vacuously).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from syncd.state_owner import hand_back
from syncd.testing.runner import Syncd

OWNER = 54321


def _root() -> None:
    if os.geteuid() != 0:
        pytest.fail("this test chowns files: run it as root (CI does)")


def _entries(root: Path) -> list[Path]:
    return [Path(d) / n for d, dirs, files in os.walk(root) for n in dirs + files]


def test_sync_run_as_root_leaves_nothing_root_owned_in_anothers_state_dir(tmp_path: Path) -> None:
    _root()
    syncd = Syncd(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("email,first_name\nann@example.com,Ann\n")
    (data / "b.csv").write_text("email,first_name\nbob@example.com,Bob\n")
    syncd.write_sync(
        "pair",
        f"""
        direction = "two-way"
        [a]
        connector = "csv"
        path = "{data / "a.csv"}"
        [b]
        connector = "csv"
        path = "{data / "b.csv"}"
        """,
    )
    os.chown(syncd.state, OWNER, OWNER)
    result = syncd.run_blocking("sync", "pair")
    assert result.status == 0, result
    entries = _entries(syncd.state)
    assert any(p.name == "syncd.db" for p in entries), entries
    wrong = [(str(p), p.lstat().st_uid, p.lstat().st_gid) for p in entries]
    assert all(uid == OWNER and gid == OWNER for _, uid, gid in wrong), wrong


def test_hand_back_touches_only_roots_files_and_not_a_root_owned_dir(tmp_path: Path) -> None:
    _root()
    state = tmp_path / "state"
    (state / "locks").mkdir(parents=True)
    mine, theirs = state / "tokens.json", state / "theirs"
    mine.write_text("{}")
    theirs.write_text("x")
    os.chown(theirs, 777, 777)
    assert hand_back(state) == 0  # the directory is root's: nothing to hand back
    os.chown(state, OWNER, OWNER)
    assert hand_back(state) == 2  # locks/ and tokens.json
    assert (mine.stat().st_uid, (state / "locks").stat().st_uid) == (OWNER, OWNER)
    assert theirs.stat().st_uid == 777
