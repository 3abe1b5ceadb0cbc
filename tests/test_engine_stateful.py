"""A hypothesis state machine in the style of vdirsyncer's ``SyncMachine``.

Two in-memory apps are edited at random (creates, edits of the same field on both sides,
clears, deletes) between syncs, under a random direction, winner and deletion policy. After every
sync: no email is held twice on a side, linked pairs agree on every field the direction lets
travel (unless the target itself edited it since, in a one-way sync), the winner's value is the
one kept, nothing edited on one side only is lost, and a second sync writes nothing.

A ``crash`` rule stops a run dead at a random crash point (after a random number of journal
commits, sends and outcome commits): nothing of the run's memory survives, the store is closed
and opened again from the SQLite file as the disk has it, and the edits made before it still
count, so every check of the next sync holds across crashes too.

``SYNCD_HYPOTHESIS_PROFILE=soak`` (``make soak``) runs 250 examples of 50 steps (12,500 steps).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from pg_support import store_for

from syncd.config import load_sync
from syncd.engine import executor
from syncd.engine.executor import CrashCounter, RunOptions, run_sync
from syncd.plugins import load_plugins
from syncd.store import Store
from syncd.testing import memory

FIELDS = ("first_name", "city", "title", "tags")
NAMES = st.sampled_from(["Ann", "Bob", "Cy", "Dee"])
CITIES = st.sampled_from(["Leeds", "York", "Hull"])
TAGS = st.frozensets(st.sampled_from(["vip", "lead", "customer"]), max_size=2)
POOL = [f"p{i}@x.com" for i in range(6)]
SIDES = ("a", "b")


def value_for(field: str) -> st.SearchStrategy[Any]:
    if field == "tags":
        return TAGS.map(lambda tags: tuple(sorted(tags)) or None)
    if field == "city":
        return CITIES
    return NAMES


def norm(value: Any) -> Any:
    if value in (None, "", ()):
        return None
    if isinstance(value, tuple | list | frozenset):
        return frozenset(value)
    return value


class SyncMachine(RuleBasedStateMachine):
    #: which store the machine runs on (PostgreSQL: :class:`PgSyncMachine`)
    KIND = "sqlite"

    def new_store(self) -> Store:
        """The machine's store; after a crash, the same database opened afresh."""
        return store_for(self.tmp / "state", self.KIND)

    def __init__(self) -> None:
        super().__init__()
        memory.reset()
        self.tmp = Path(tempfile.mkdtemp(prefix="syncd-machine-"))
        self.plugins = load_plugins(extra=[memory])
        self.store = self.new_store()
        self.store.open()
        self.apps = {"a": memory.app("m-a"), "b": memory.app("m-b")}
        self.fresh = itertools.count()
        # edits made since the last sync: (side, record id, field) -> (value, clock, linked)
        self.edits: dict[tuple[str, str, str], tuple[Any, int, bool]] = {}
        # (side, record id) -> the clock of a person's last edit of any field of the record:
        # "newest" compares the apps' record timestamps, not the times of single fields
        self.touched: dict[tuple[str, str], int] = {}
        # one-way syncs: target fields edited on the target since the source last wrote them
        self.diverged: set[tuple[str, str, str]] = set()
        self.clock = itertools.count()
        self.direction = "two-way"
        self.winner = "a"
        self.deletions = "ignore"
        self.slice_size = 5000
        #: a run was stopped dead since the last sync
        self.crashed = False

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        memory.reset()

    @initialize(
        direction=st.sampled_from(["two-way", "a-to-b", "b-to-a"]),
        winner=st.sampled_from(["a", "b", "newest"]),
        deletions=st.sampled_from(["ignore", "tag", "archive"]),
        slice_size=st.sampled_from([1, 2, 5000]),
    )
    def configure(self, direction: str, winner: str, deletions: str, slice_size: int) -> None:
        self.direction, self.winner, self.deletions = direction, winner, deletions
        # new records are planned and written a slice at a time: tiny slices put matches,
        # creates and reported records in different slices
        self.slice_size = slice_size
        path = self.tmp / "config" / "syncs" / "m.toml"
        path.parent.mkdir(parents=True)
        path.write_text(
            f'direction = "{direction}"\nwinner = "{winner}"\ndeletions = "{deletions}"\n'
            '[a]\nconnector = "memory"\naccount = "m-a"\n'
            '[b]\nconnector = "memory"\naccount = "m-b"\n'
        )
        self.sync = load_sync(path, self.plugins)

    # --- what users do in the apps ----------------------------------------------------------

    def live(self, side: str) -> dict[str, dict[str, Any]]:
        return self.apps[side].live()

    def emails(self, side: str) -> set[str]:
        return {str(r.get("email")) for r in self.live(side).values()}

    @rule(
        side=st.sampled_from(SIDES),
        email=st.sampled_from(POOL),
        name=NAMES,
        city=CITIES,
    )
    def create(self, side: str, email: str, name: str, city: str) -> None:
        if email in self.emails(side):
            return  # people do not type the same contact twice into one app
        rid = self.apps[side].add({"email": email, "first_name": name, "city": city})
        for field in ("email", *FIELDS):
            self.diverged.add((side, rid, field))

    @precondition(lambda self: any(self.live(s) for s in SIDES))
    @rule(data=st.data(), field=st.sampled_from(FIELDS))
    def edit(self, data: st.DataObject, field: str) -> None:
        side = data.draw(st.sampled_from([s for s in SIDES if self.live(s)]))
        rid = data.draw(st.sampled_from(sorted(self.live(side))))
        value = data.draw(value_for(field) | st.none())
        if norm(self.apps[side].records[rid].data.get(field)) == norm(value):
            return  # typing the value a field already holds changes nothing
        self.apps[side].edit(rid, **{field: value})
        self.edits[(side, rid, field)] = (
            norm(value),
            self.tick(side, rid),
            self.is_linked(side, rid),
        )
        self.diverged.add((side, rid, field))

    def tick(self, side: str, rid: str) -> int:
        """The clock of a person's edit of the record, which is now its newest."""
        self.touched[(side, rid)] = clock = next(self.clock)
        return clock

    @precondition(lambda self: any(self.live(s) for s in SIDES))
    @rule(data=st.data())
    def change_email(self, data: st.DataObject) -> None:
        side = data.draw(st.sampled_from([s for s in SIDES if self.live(s)]))
        rid = data.draw(st.sampled_from(sorted(self.live(side))))
        new = f"fresh{next(self.fresh)}@x.com"
        self.apps[side].edit(rid, email=new)
        self.edits[(side, rid, "email")] = (new, self.tick(side, rid), self.is_linked(side, rid))
        self.diverged.add((side, rid, "email"))

    @precondition(lambda self: any(self.live(s) for s in SIDES))
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        side = data.draw(st.sampled_from([s for s in SIDES if self.live(s)]))
        rid = data.draw(st.sampled_from(sorted(self.live(side))))
        self.apps[side].delete(rid)
        for key in [k for k in self.edits if k[0] == side and k[1] == rid]:
            del self.edits[key]

    # --- syncing ----------------------------------------------------------------------------

    def run(self) -> Any:
        with mock.patch.object(executor, "NEW_RECORDS_SLICE", self.slice_size):
            return asyncio.run(run_sync(self.sync, self.store, RunOptions(full=True, force=True)))

    def links(self) -> list[Any]:
        return [k for k in self.store.load_links("m") if k.state == "linked"]

    def travels(self, to: str) -> bool:
        return self.direction == "two-way" or self.direction.endswith(to)

    def is_linked(self, side: str, rid: str) -> bool:
        return any(link.record_id(side) == rid for link in self.links())

    @rule(points=st.integers(min_value=1, max_value=10))
    def crash(self, points: int) -> None:
        """A run stopped dead at its ``points``th crash point."""

        def stop_dead() -> None:
            raise Crash()

        executor.crash_hook = CrashCounter(points, None, stop_dead)
        try:
            self.run()
        except Crash:
            pass
        finally:
            executor.crash_hook = None
        # the process is gone: only what the disk has survives
        self.store.close()
        self.store = self.new_store()
        self.store.open()
        self.crashed = True

    @rule()
    def sync(self) -> None:
        # only edits of records linked when they were made are changes since a base; before
        # the first merge of a record, an empty value never blanks a filled one (rule 3)
        linked_now = {(side, link.record_id(side)) for link in self.links() for side in SIDES}
        edits = {k: v[:2] for k, v in self.edits.items() if v[2] and (k[0], k[1]) in linked_now}
        crashed, self.crashed = self.crashed, False
        touched = dict(self.touched)
        result = self.run()
        assert result.outcome == "success", (result.outcome, result.message)
        self.edits.clear()
        links = self.links()
        for link in links:
            ids = {"a": link.a_id, "b": link.b_id}
            records = {s: self.apps[s].records.get(ids[s]) for s in SIDES}
            if any(r is None or r.archived for r in records.values()):
                continue
            for field in ("email", *FIELDS):
                got = {s: norm(records[s].data.get(field)) for s in SIDES}  # type: ignore[union-attr]
                made = {s: edits.get((s, ids[s], field)) for s in SIDES}
                if made["a"] and made["b"] and made["a"][0] != made["b"][0]:
                    # the same field changed on both sides: the winner's value is kept; "newest"
                    # is the record a person edited last (in any field), as the apps' own
                    # timestamps say
                    winner = self.winner
                    latest = "a" if touched[("a", ids["a"])] > touched[("b", ids["b"])] else "b"
                    if winner == "newest":
                        winner = latest
                    if self.travels(other(winner)):
                        kept = {made[winner][0]}
                        # the side whose edit of this field came last (a later edit of another
                        # field can make the other record the newest one)
                        last_edit = "a" if made["a"][1] > made["b"][1] else "b"
                        if crashed and self.travels(other(last_edit)):
                            # an edit made over a crashed run's write that may or may not have
                            # landed first: the person's latest edit of the field may be kept
                            kept.add(made[last_edit][0])
                        if crashed and self.winner == "newest":
                            # a crashed run's write that landed made its record the newest
                            kept.update(made[s][0] for s in SIDES if self.travels(other(s)))
                        assert got["a"] == got["b"] and got["a"] in kept, (field, got, made)
                for side in SIDES:
                    if made[side] and not made[other(side)] and self.travels(other(side)):
                        # edited on one side only: not lost on the way
                        assert got[other(side)] == made[side][0], (field, side, got, made)
                if got["a"] == got["b"]:
                    for side in SIDES:
                        self.diverged.discard((side, ids[side], field))
        second = self.run()
        assert second.outcome == "success", second.message
        writes = sum(app.write_calls for app in self.apps.values())
        third = self.run()
        assert sum(app.write_calls for app in self.apps.values()) == writes, third.counts
        # the link index kept in memory across runs is the one the database gives
        kept = self.store.load_link_index("m")
        self.store._link_indexes.clear()
        fresh = self.store.load_link_index("m")
        assert (kept.fps, kept.total, kept.linked, kept.linked_on) == (
            fresh.fps,
            fresh.total,
            fresh.linked,
            fresh.linked_on,
        )

    @invariant()
    def no_email_twice_on_a_side(self) -> None:
        for side in SIDES:
            emails = [str(r.get("email")).lower() for r in self.live(side).values()]
            assert len(emails) == len(set(emails)), (side, sorted(emails))

    @precondition(lambda self: not self.edits and not self.crashed)
    @invariant()
    def linked_pairs_agree(self) -> None:
        for link in self.links():
            records = {
                "a": self.apps["a"].records.get(link.a_id or ""),
                "b": self.apps["b"].records.get(link.b_id or ""),
            }
            if any(r is None or r.archived for r in records.values()):
                continue
            for field in ("email", *FIELDS):
                values = {s: norm(records[s].data.get(field)) for s in SIDES}  # type: ignore[union-attr]
                if self.direction != "two-way":
                    source = self.direction[0]
                    target = other(source)
                    if (target, link.record_id(target), field) in self.diverged:
                        continue  # the target's own edit, which a one-way sync leaves alone
                if field == "tags" and self.deletions == "tag":
                    values = {
                        s: (v or frozenset()) - {"syncd-deleted"} or None for s, v in values.items()
                    }
                assert values["a"] == values["b"], (field, link, values)


class Crash(BaseException):
    """A run stopped dead (not an ``Exception``: nothing in the run catches it)."""


def other(side: str) -> str:
    return "b" if side == "a" else "a"


#: examples x steps: 1,500 steps in ``make test``, 12,500 in ``make soak``
PROFILES = {"default": (60, 25), "soak": (250, 50)}
EXAMPLES, STEPS = PROFILES[os.environ.get("SYNCD_HYPOTHESIS_PROFILE", "default")]

TestSyncMachine = SyncMachine.TestCase
TestSyncMachine.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class PgSyncMachine(SyncMachine):
    """The same machine on PostgreSQL, with fewer examples (each opens a database)."""

    KIND = "postgresql"


TestPgSyncMachine = PgSyncMachine.TestCase
TestPgSyncMachine.settings = settings(
    max_examples=max(10, EXAMPLES // 6),
    stateful_step_count=STEPS,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class Drawn:
    """The draws of a rule's ``data`` given in advance (a case the machine found, replayed)."""

    def __init__(self, *values: Any) -> None:
        self.values = list(values)

    def draw(self, strategy: Any) -> Any:
        return self.values.pop(0)


@pytest.mark.parametrize("machine", [SyncMachine, PgSyncMachine], ids=["sqlite", "postgresql"])
def test_creates_resent_after_two_crashes_are_linked_before_new_records_are_copied(
    machine: type[SyncMachine],
) -> None:
    """Found by ``TestPgSyncMachine``: two runs die after sending a create each way (a's p4 to
    b, b's p2 to a); a person then changes the email of both copies. The next run sends the
    creates again under their keys, and the app answers with the copies made then. Planned
    after them, a's copy of p2 looked new and was copied back to b: a duplicate, and the
    resent create failed ("linked to another record already")."""
    state = machine()
    try:
        state.configure(direction="two-way", winner="a", deletions="ignore", slice_size=1)
        state.create(side="a", email="p0@x.com", name="Ann", city="Leeds")
        machine.sync(state)
        state.create(side="a", email="p4@x.com", name="Cy", city="York")
        state.crash(points=2)  # sent to b, not committed
        state.create(side="b", email="p2@x.com", name="Bob", city="York")
        state.crash(points=2)  # sent to a, not committed
        state.change_email(Drawn("b", "m2"))  # b's copy of p4
        state.change_email(Drawn("a", "m3"))  # a's copy of p2
        machine.sync(state)  # success, every check of the machine holds
        for side in SIDES:
            assert len(state.live(side)) == 3, state.live(side)
    finally:
        state.teardown()
