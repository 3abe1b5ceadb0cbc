"""The crash soak (rule 4): a sync stopped dead at seeded crash points, both sides edited
between the kills, and what must hold once a clean run has finished.

An *episode* starts from two fresh sides (CSV files, or the Xero and Salesflare emulators served
on 127.0.0.1) whose people overlap with differing fields, and a fresh state directory. Round
after round, a person edits fields and adds people on either side (through the connector, as an
app's own user interface would), then a run is started that dies at its Nth crash point
(``syncd.engine.executor`` names them: ``journaled``, before a batch is sent; ``sent``, after it
returned and before its outcome is committed; ``committed``). N is drawn from a seeded generator,
never from a clock. In process (the default) the run is stopped by an exception raised at that
point, the store is closed and opened again, so that nothing but the disk survives; with
``sigkill=True`` a real ``syncd sync`` process is killed with SIGKILL there.

After the last kill a clean run and a second one; then: no email twice on a side, no person on
one side only, the latest edit of every field kept (or, for edits made on both sides before
either reached the other, the winner's), ``PRAGMA integrity_check`` ok, no pending create and no
journal entry left, and the second run wrote nothing.

``bench/soak.py`` runs it at length (``make soak``); ``tests/test_crash.py`` runs a slice.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import random
import shutil
import sqlite3
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syncd.config import SyncConfig, load_sync
from syncd.connector import Connector, ConnectorContext, RecordWrite
from syncd.engine import executor
from syncd.engine.executor import CRASH_ENV, CrashCounter, RunOptions, run_sync
from syncd.engine.fields import SideFields, build_pairs, to_raw, value_hash
from syncd.plugins import load_plugins
from syncd.sandbox import SandboxServer
from syncd.store import Store

SYNC = "soak"
WINNER = "a"
#: the fields a person edits, where both sides map them
EDITABLE = ("first_name", "last_name", "city", "title")
XERO_SECRET_ENV = "SYNCD_SOAK_XERO_SECRET"


class SoakCrash(BaseException):
    """Raised at the chosen crash point: not an ``Exception``, so nothing in the run catches it."""


@dataclass
class Counts:
    """What a soak did and found (the problems must all be zero)."""

    episodes: int = 0
    kill_points: int = 0
    kills_by_point: Counter[str] = field(default_factory=Counter)
    runs: int = 0
    completed_runs: int = 0
    edits: int = 0
    added: int = 0
    fields_checked: int = 0
    edits_kept: int = 0
    conflicts_won_by_winner: int = 0
    #: fields edited on both sides where the other side's later edit was kept: a crashed run's
    #: write the winner's side was edited over before it landed (see ``History.expected``)
    conflicts_latest_edit_kept: int = 0
    duplicates: int = 0
    lost_edits: int = 0
    one_side_only: int = 0
    integrity_failures: int = 0
    pending_left: int = 0
    journal_left: int = 0
    final_writes: int = 0
    failed_runs: int = 0
    problems: list[str] = field(default_factory=list)

    def add(self, other: Counts) -> None:
        for name, value in vars(other).items():
            if isinstance(value, int):
                setattr(self, name, getattr(self, name) + value)
        self.kills_by_point.update(other.kills_by_point)
        self.problems.extend(other.problems)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> dict[str, Any]:
        data = {k: v for k, v in vars(self).items() if k != "problems"}
        data["kills_by_point"] = dict(sorted(self.kills_by_point.items()))
        data["problems"] = len(self.problems)
        return data


# --- the sides ------------------------------------------------------------------------------


class SideApp:
    """One side of the sync: its settings, and a person's hands on it (its own connector)."""

    connector_name = ""

    def __init__(self, side: str, root: Path) -> None:
        self.side = side
        self.root = root
        self.person: Connector | None = None
        self.fields: SideFields | None = None
        self.names: dict[str, str] = {}

    async def start(self) -> None:
        """Start the app (an emulator) if it needs one."""

    async def stop(self) -> None:
        if self.person is not None:
            await self.person.close()

    def settings(self) -> dict[str, Any]:
        raise NotImplementedError

    def toml_settings(self) -> dict[str, Any]:
        return self.settings()

    def add_values(self, values: dict[str, Any], serial: int) -> dict[str, Any]:
        """App fields a new record needs besides the mapped ones."""
        return {}

    async def attach(self, sync: SyncConfig) -> None:
        config = sync.side(self.side)
        pairs = build_pairs(sync)
        self.fields = SideFields.build(self.side, pairs, config.connector_class, sync.phone_region)
        self.names = {key: name for key, name, _ in self.fields.fields}
        person_dir = self.root / f"person-{self.side}"
        person_dir.mkdir(parents=True, exist_ok=True)
        self.person = config.connector_class(
            self.settings(), ConnectorContext("person", self.side, person_dir)
        )
        await self.person.open()

    async def snapshot(self) -> dict[str, list[tuple[str, dict[str, Any]]]]:
        """Every live record as (id, view), by email."""
        assert self.person is not None and self.fields is not None
        found: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        async for page in self.person.list_records(None):
            for record in page:
                if record.archived or record.error is not None:
                    continue
                view = self.fields.view(record.data)
                email = view.get("email")
                if isinstance(email, str):
                    found.setdefault(email, []).append((record.id, view))
        return found

    async def write(self, record_id: str | None, values: dict[str, Any], serial: int) -> None:
        assert self.person is not None
        data = {self.names[k]: to_raw(v) for k, v in values.items() if k in self.names}
        if record_id is None:
            data.update(self.add_values(values, serial))
            results = await self.person.create([RecordWrite(key=f"add{serial}", data=data)])
        else:
            write = RecordWrite(key=f"edit{serial}", data=data, id=record_id)
            results = await self.person.update([write])
        if not all(r.ok for r in results):
            raise RuntimeError(f"side {self.side}: the app refused a person's write: {results}")

    async def seed(self, people: list[dict[str, Any]]) -> None:
        assert self.person is not None
        size = max(1, self.person.capabilities.create_batch_size)
        for start in range(0, len(people), size):
            chunk = people[start : start + size]
            writes = []
            for offset, values in enumerate(chunk):
                data = {self.names[k]: to_raw(v) for k, v in values.items() if k in self.names}
                data.update(self.add_values(values, start + offset))
                writes.append(RecordWrite(key=f"seed{start + offset}", data=data))
            results = await self.person.create(writes)
            if not all(r.ok for r in results):
                raise RuntimeError(f"side {self.side}: seeding refused: {results}")


class CsvApp(SideApp):
    connector_name = "csv"

    def __init__(self, side: str, root: Path, batch_size: int = 4) -> None:
        super().__init__(side, root)
        self.path = root / f"{side}.csv"
        self.batch_size = batch_size

    def settings(self) -> dict[str, Any]:
        return {"path": str(self.path), "batch_size": self.batch_size}


class XeroApp(SideApp):
    connector_name = "xero"

    async def start(self) -> None:
        # the plugin is optional for syncd itself: imported by name
        make_app = importlib.import_module("syncd_xero.sandbox").make_app
        self.server = SandboxServer(make_app(None, {"rate_limits": False}))
        await self.server.start()
        os.environ[XERO_SECRET_ENV] = "sandbox-custom-secret"

    async def stop(self) -> None:
        await super().stop()
        await self.server.stop()

    def settings(self) -> dict[str, Any]:
        url = self.server.url
        return {
            "grant": "client_credentials",
            "client_id": "sandbox-custom-client",
            "client_secret": "sandbox-custom-secret",
            "api_url": url,
            "identity_url": url,
            "login_url": url,
            "batch_size": 5,
            # the emulator runs without Xero's limits: so does the connector
            "minute_limit": 100000,
            "day_limit": 1000000,
        }

    def toml_settings(self) -> dict[str, Any]:
        return {**self.settings(), "client_secret": "${env:" + XERO_SECRET_ENV + "}"}

    def add_values(self, values: dict[str, Any], serial: int) -> dict[str, Any]:
        # Xero needs a unique Name: the organisation the contact person works for
        return {} if values.get("name") else {"Name": f"Org of {values['email']}"}


class SalesflareApp(SideApp):
    connector_name = "salesflare"

    async def start(self) -> None:
        make_app = importlib.import_module("syncd_salesflare.sandbox").make_app
        self.server = SandboxServer(make_app(None, {"rate_limit": 0}))
        await self.server.start()

    async def stop(self) -> None:
        await super().stop()
        await self.server.stop()

    def settings(self) -> dict[str, Any]:
        return {
            "api_key": "sandbox-api-key",
            "base_url": self.server.url,
            "calls_per_minute": 60000,
            "concurrency": 4,
            "backoff_seconds": 0.001,
        }


APPS: dict[str, Callable[[str, Path], SideApp]] = {
    "csv": CsvApp,
    "xero": XeroApp,
    "salesflare": SalesflareApp,
}


# --- what a person did, and what must have survived ----------------------------------------


@dataclass
class History:
    """Per (email, field): the edits still in play, as (side, value hash).

    An edit made on a side that already held the other side's latest edit (or with no edit of
    the other side in play) supersedes everything before it. Otherwise the two sides were
    edited before either reached the other: a conflict, which the winner decides."""

    edits: dict[tuple[str, str], list[tuple[str, str]]] = field(default_factory=dict)

    def record(
        self,
        email: str,
        key: str,
        side: str,
        value: Any,
        held: Any,
        known: bool = True,
        theirs_now: Any = None,
    ) -> None:
        """An edit on ``side`` of a field that held ``held``. ``known``: whether syncd had seen
        the pair yet (linked with a base, or journaled); before that, what each side holds is
        its data, and differing data is a conflict the first merge gives the winner
        (``theirs_now``: the other side's value then)."""
        entries = self.edits.setdefault((email, key), [])
        other_side = "b" if side == "a" else "a"
        if not known:
            mine = [(s, h) for s, h in entries if s == side]
            entries[:] = [(s, h) for s, h in entries if s != side]
            if theirs_now is not None and not entries:
                entries.append((other_side, value_hash(theirs_now)))
            del mine
            entries.append((side, value_hash(value)))
            return
        theirs = [h for s, h in entries if s != side]
        held_hash = value_hash(held) if held is not None else None
        if not theirs or held_hash == theirs[-1]:
            entries.clear()
        entries.append((side, value_hash(value)))

    def expected(self, email: str, key: str, winner: str) -> tuple[set[str], bool] | None:
        """The value hashes one of which must be on both sides, and whether the edits were a
        conflict: then the winner's latest edit, or the latest edit of all (a crashed run's
        write the other side was edited over before it landed cannot be told from one that
        landed first: either way the person's latest edit is the one kept)."""
        entries = self.edits.get((email, key))
        if not entries:
            return None
        sides = {s for s, _ in entries}
        if len(sides) == 1:
            return {entries[-1][1]}, False
        return {[h for s, h in entries if s == winner][-1], entries[-1][1]}, True

    def winners_edit(self, email: str, key: str, winner: str) -> str | None:
        """The hash of the winner side's latest edit of the field, if it edited it."""
        mine = [h for s, h in self.edits.get((email, key), []) if s == winner]
        return mine[-1] if mine else None


# --- one episode ----------------------------------------------------------------------------


class Episode:
    def __init__(
        self,
        a_kind: str,
        b_kind: str,
        seed: int,
        kills: int,
        root: Path,
        people: tuple[int, int, int] = (14, 10, 6),
        sigkill: bool = False,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self.kills = kills
        self.root = root
        self.people = people
        self.sigkill = sigkill
        self.log = log or (lambda _: None)
        self.apps = {"a": APPS[a_kind]("a", root), "b": APPS[b_kind]("b", root)}
        self.state = root / "state"
        self.counts = Counts(episodes=1)
        self.history = History()
        self.serial = 0
        self.cap = 40
        self.sync: SyncConfig | None = None

    # --- setting up ---------------------------------------------------------------------------

    def write_config(self) -> Path:
        lines = [f'winner = "{WINNER}"', 'deletions = "ignore"']
        for side in ("a", "b"):
            app = self.apps[side]
            lines.append(f"[{side}]")
            lines.append(f'connector = "{app.connector_name}"')
            for key, value in app.toml_settings().items():
                lines.append(f"{key} = {json.dumps(value)}")
        path = self.root / "config" / "syncs" / f"{SYNC}.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def named(self) -> bool:
        """Whether the sync maps ``name`` (Xero's organisation name, which it derives from the
        person's name when a create sends none, and which would then travel back once)."""
        assert self.sync is not None
        return any(p.key == "name" for p in build_pairs(self.sync))

    def editable(self) -> list[str]:
        assert self.sync is not None
        keys = {p.key for p in build_pairs(self.sync)}
        return [k for k in EDITABLE if k in keys]

    async def setup(self) -> None:
        for app in self.apps.values():
            await app.start()
        self.sync = load_sync(self.write_config(), load_plugins())
        for app in self.apps.values():
            await app.attach(self.sync)
        only_a, only_b, shared = self.people
        keys = self.editable()
        a_people, b_people = [], []
        for i in range(shared):
            base = {"email": f"p{i}@soak.example"}
            a_people.append({**base, "first_name": f"Ann{i}", "last_name": f"Alpha{i}"})
            b_people.append({**base, "first_name": f"Ann{i}", "last_name": f"Beta{i}"})
            a_people[-1]["city"] = f"Acity{i}"
            b_people[-1]["city"] = f"Bcity{i}"
            b_people[-1]["title"] = f"Btitle{i}"  # a has none: filled from b
        for i in range(only_a):
            a_people.append(
                {"email": f"a{i}@soak.example", "first_name": f"Al{i}", "last_name": f"Aa{i}"}
            )
        for i in range(only_b):
            b_people.append(
                {"email": f"b{i}@soak.example", "first_name": f"Bo{i}", "last_name": f"Bb{i}"}
            )
        named = self.named()
        for side, people in (("a", a_people), ("b", b_people)):
            people = [{k: v for k, v in p.items() if k == "email" or k in keys} for p in people]
            if named:
                for person in people:
                    person["name"] = f"Org of {person['email']}"
            await self.apps[side].seed(people)
        # what each side holds to begin with counts as that side's own data
        snapshots = {side: await self.apps[side].snapshot() for side in ("a", "b")}
        for email in sorted(set(snapshots["a"]) | set(snapshots["b"])):
            views = {s: snapshots[s].get(email, [(None, {})])[0][1] for s in ("a", "b")}
            for key in keys:
                held = {s: views[s].get(key) for s in ("a", "b")}
                for side in ("a", "b"):
                    if held[side] is not None and held[side] != held["b" if side == "a" else "a"]:
                        self.history.edits.setdefault((email, key), []).append(
                            (side, value_hash(held[side]))
                        )

    async def teardown(self) -> None:
        for app in self.apps.values():
            await app.stop()

    # --- a person at work ---------------------------------------------------------------------

    async def person_round(self) -> None:
        keys = self.editable()
        for _ in range(self.rng.randint(0, 3)):
            side = self.rng.choice(("a", "b"))
            snapshot = await self.apps[side].snapshot()
            if not snapshot:
                continue
            email = self.rng.choice(sorted(snapshot))
            record_id, view = snapshot[email][0]
            key = self.rng.choice(keys)
            self.serial += 1
            value = f"{key[:2].upper()}{self.serial}x{side}"
            other_side = "b" if side == "a" else "a"
            theirs = (await self.apps[other_side].snapshot()).get(email)
            known = self.known(side, record_id, theirs[0][0] if theirs else None)
            await self.apps[side].write(record_id, {key: value}, self.serial)
            stored = await self.stored(side, email, key)
            if stored is None or value_hash(stored) != value_hash(value):
                continue  # the app did not keep it (a quirk of the app, not syncd's doing)
            self.history.record(
                email,
                key,
                side,
                value,
                view.get(key),
                known=known,
                theirs_now=theirs[0][1].get(key) if theirs else None,
            )
            self.counts.edits += 1
        if self.rng.random() < 0.25:
            side = self.rng.choice(("a", "b"))
            self.serial += 1
            email = f"new{self.serial}@soak.example"
            values = {"email": email, "first_name": f"New{self.serial}", "last_name": f"N{side}"}
            values[self.rng.choice(keys)] = f"Fresh{self.serial}"
            if self.named():
                values["name"] = f"Org of {email}"
            await self.apps[side].write(None, values, self.serial)
            kept = (await self.apps[side].snapshot()).get(email, [(None, {})])[0][1]
            for key in keys:
                # what the app kept (an app may drop a value it cannot store as given)
                if kept.get(key) is not None:
                    self.history.record(email, key, side, kept[key], None, known=False)
            self.counts.added += 1

    async def stored(self, side: str, email: str, key: str) -> Any:
        records = (await self.apps[side].snapshot()).get(email)
        return records[0][1].get(key) if records else None

    def known(self, side: str, record_id: str, partner: str | None) -> bool:
        """Whether syncd has seen this pair: linked with bases, or in the journal."""
        path = self.state / "syncd.db"
        if not path.exists():
            return False
        db = sqlite3.connect(path)
        try:
            linked = db.execute(
                f"SELECT count(*) FROM link WHERE {side}_id = ? AND state = 'linked'"
                " AND base_a IS NOT NULL AND base_b IS NOT NULL",
                (record_id,),
            ).fetchone()[0]
            ids = [i for i in (record_id, partner) if i is not None]
            marks = ", ".join("?" * len(ids))
            journaled = db.execute(
                "SELECT count(*) FROM journal WHERE outcome IN ('pending', 'failed')"
                f" AND (record_id IN ({marks}) OR source_id IN ({marks}))",
                (*ids, *ids),
            ).fetchone()[0]
        finally:
            db.close()
        return bool(linked or journaled)

    # --- runs ---------------------------------------------------------------------------------

    async def run(self, crash_at: int | None) -> dict[str, Any] | None:
        """One run; None when it was killed at its ``crash_at``th crash point."""
        self.counts.runs += 1
        if self.sigkill:
            return await self._run_process(crash_at)
        assert self.sync is not None
        where: list[str] = []

        def crash() -> None:
            raise SoakCrash()

        counter = CrashCounter(crash_at or 0, None, crash)

        def hook(point: str) -> None:
            where.append(point)
            counter(point)

        executor.crash_hook = hook
        store = Store(self.state)
        await store.aopen()
        try:
            result = await run_sync(self.sync, store, RunOptions(trigger="soak"))
        except SoakCrash:
            self.counts.kill_points += 1
            self.counts.kills_by_point[where[-1]] += 1
            return None
        finally:
            executor.crash_hook = None
            # nothing of the run's memory survives: the next run opens the store afresh
            await store.aclose()
        self.cap = max(3, len(where))
        if result.outcome != "success":
            self.counts.failed_runs += 1
            self.counts.problems.append(f"run ended {result.outcome}: {result.message}")
        return {"outcome": result.outcome, "counts": result.counts}

    async def _run_process(self, crash_at: int | None) -> dict[str, Any] | None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
        env[XERO_SECRET_ENV] = os.environ.get(XERO_SECRET_ENV, "")
        if crash_at:
            env[CRASH_ENV] = str(crash_at)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "syncd.cli",
            "--config",
            str(self.root / "config"),
            "--state-dir",
            str(self.state),
            "sync",
            SYNC,
            "--json",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=600)
        if process.returncode == -9:
            self.counts.kill_points += 1
            self.counts.kills_by_point["sigkill"] += 1
            return None
        try:
            parsed = json.loads(out.decode())
        except ValueError:
            parsed = {}
        result = parsed[0] if isinstance(parsed, list) and parsed else parsed
        counts = result.get("counts", {}) if isinstance(result, dict) else {}
        outcome = result.get("outcome") if isinstance(result, dict) else None
        if process.returncode != 0 or outcome != "success":
            self.counts.failed_runs += 1
            self.counts.problems.append(f"run ended {process.returncode}: {err.decode()[-300:]}")
        writes = sum(v for k, v in counts.items() if k.startswith(("created", "updated")))
        self.cap = max(3, 3 * (writes // 4 + 2))
        return {"outcome": outcome, "counts": counts}

    async def play(self) -> Counts:
        await self.setup()
        try:
            while self.counts.kill_points < self.kills:
                await self.person_round()
                if await self.run(self.rng.randint(1, self.cap)) is not None:
                    self.counts.completed_runs += 1
            await self.check()
        finally:
            await self.teardown()
        return self.counts

    # --- what must hold -----------------------------------------------------------------------

    async def check(self) -> None:
        counts = self.counts
        final = await self.run(None)
        again = await self.run(None)
        if final is None or again is None:
            counts.problems.append("a clean run was killed")
            return
        written = sum(
            v
            for k, v in again["counts"].items()
            if k.startswith(("created_", "updated_", "archived_"))
        )
        if written:
            counts.final_writes += written
            counts.problems.append(f"the run after the clean one wrote: {again['counts']}")
        snapshots = {side: await self.apps[side].snapshot() for side in ("a", "b")}
        for side, snapshot in snapshots.items():
            for email, records in snapshot.items():
                if len(records) > 1:
                    counts.duplicates += 1
                    counts.problems.append(f"{email} is held {len(records)} times on {side}")
        for side, other_side in (("a", "b"), ("b", "a")):
            for email in sorted(set(snapshots[side]) - set(snapshots[other_side])):
                counts.one_side_only += 1
                counts.problems.append(f"{email} is on side {side} only")
        for (email, key), _entries in sorted(self.history.edits.items()):
            expected = self.history.expected(email, key, WINNER)
            if expected is None or email not in snapshots["a"] or email not in snapshots["b"]:
                continue
            counts.fields_checked += 1
            want, conflict = expected
            got = {s: snapshots[s][email][0][1].get(key) for s in ("a", "b")}
            hashes = {s: value_hash(v) if v is not None else None for s, v in got.items()}
            if hashes["a"] == hashes["b"] and hashes["a"] in want:
                if not conflict:
                    counts.edits_kept += 1
                elif hashes["a"] == self.history.winners_edit(email, key, WINNER):
                    counts.conflicts_won_by_winner += 1
                else:
                    counts.conflicts_latest_edit_kept += 1
            else:
                counts.lost_edits += 1
                counts.problems.append(
                    f"{email} {key}: a={got['a']!r} b={got['b']!r}, history "
                    f"{self.history.edits[(email, key)]} (want {want})"
                )
        db = sqlite3.connect(self.state / "syncd.db")
        try:
            if db.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                counts.integrity_failures += 1
                counts.problems.append("PRAGMA integrity_check failed")
            pending = db.execute("SELECT count(*) FROM pending_write").fetchone()[0]
            journal = db.execute(
                "SELECT count(*) FROM journal WHERE outcome IN ('pending', 'failed')"
            ).fetchone()[0]
        finally:
            db.close()
        if pending:
            counts.pending_left += pending
            counts.problems.append(f"{pending} pending creates left after a clean run")
        if journal:
            counts.journal_left += journal
            counts.problems.append(f"{journal} journal entries left after a clean run")


async def soak(
    pairs: list[tuple[str, str]],
    kill_points: int,
    seed: int,
    per_episode: int = 20,
    people: tuple[int, int, int] = (14, 10, 6),
    sigkill: bool = False,
    log: Callable[[str], None] | None = None,
) -> Counts:
    """Run episodes over each pair of app kinds until ``kill_points`` kills were made in all."""
    total = Counts()
    rng = random.Random(seed)
    done = 0
    index = 0
    while done < kill_points:
        a_kind, b_kind = pairs[index % len(pairs)]
        kills = min(per_episode, kill_points - done)
        root = Path(tempfile.mkdtemp(prefix="syncd-soak-"))
        episode_seed = rng.randrange(2**32)
        try:
            counts = await Episode(
                a_kind, b_kind, episode_seed, kills, root, people, sigkill, log
            ).play()
        finally:
            shutil.rmtree(root, ignore_errors=True)
        for problem in counts.problems[:5]:
            if log is not None:
                log(f"{a_kind}-{b_kind} seed {episode_seed}: {problem}")
        total.add(counts)
        done += counts.kill_points
        index += 1
        if log is not None:
            log(
                f"episode {index} {a_kind}-{b_kind} seed {episode_seed}: {counts.kill_points} "
                f"kills, {counts.edits} edits, {len(counts.problems)} problems"
            )
    return total


__all__ = ["CRASH_ENV", "Counts", "Episode", "SoakCrash", "soak"]
