"""The planner: state in, actions out, no I/O (in the style of vdirsyncer).

The decisions, per link, read as a table. ``listed`` = the record was listed (and is not
archived); ``unlisted`` = an incremental listing did not show it (unchanged); ``gone`` = a full
listing did not show it (deleted); ``archived`` = listed as archived.

| link     | side a        | side b        | decision                                           |
|----------|---------------|---------------|----------------------------------------------------|
| linked   | listed/unl.   | listed/unl.   | field-level three-way merge of what changed        |
| linked   | gone/archived | listed/unl.   | b edited and a deleted: re-create on a (edit beats |
|          |               |               | delete); else the deletion policy (rule 7)         |
| linked   | gone          | gone          | forget the link                                    |
| seen     | listed, edited| -             | a new record from now on (``new-only`` baseline)   |
| gone_a   | -             | listed, edited| re-create on a (edit beats delete)                 |
| (none)   | new record    |               | match by email on b: one match → new link merged   |
|          |               |               | without base; none → create on b; several → report |

Everything symmetrical holds with a and b swapped. Without a base (a first merge) an empty value
never blanks a filled one; a field changed on both sides goes to the winner. A record revived by
edit-beats-delete that matches a new record keeps its own base: what it changed since wins.

After a crash, the journal (``PlanInput.journal``: what a run sent but never committed) gives a
field whose target holds what was sent that value as its base, and the source's value it came
from as the source's, also in a first merge: an edit made since, on either side, is an edit.

``plan`` decides the links; new records come back as :class:`NewRecords`, which the executor
plans a slice at a time (``Plan.match_all`` plans them all, for a dry run).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from syncd.connector import RawValue
from syncd.contact import CUSTOM_PREFIX, FieldValue, display, normalise
from syncd.engine.fields import hashes, to_raw, value_hash
from syncd.engine.model import (
    SIDES,
    Conflict,
    PairPlan,
    Plan,
    PlanInput,
    SideRecord,
    Write,
    other,
)
from syncd.engine.rules import apply_actions, matching_rules, why_no_rule_matched
from syncd.store import IssueRow, LinkRow, encode_base
from syncd.store.history import Held

EMAIL = "email"
PHONE_KEYS = ("mobile", "phone")


def plan(inp: PlanInput) -> Plan:
    return _Planner(inp).run()


class _Planner:
    def __init__(self, inp: PlanInput) -> None:
        self.inp = inp
        self.out = Plan()
        self.by_id: dict[str, dict[str, LinkRow]] = {"a": {}, "b": {}}
        for link in inp.links:
            for side in SIDES:
                rid = link.record_id(side)
                if rid is not None:
                    self.by_id[side][rid] = link
        #: new records per side (a first merge has 100,000 of each: no tuple per record) ...
        self.new: dict[str, list[SideRecord]] = {"a": [], "b": []}
        #: ... and those that revive a link (seen/tombstone), with it
        self.revived: dict[str, list[tuple[SideRecord, LinkRow]]] = {"a": [], "b": []}
        self.pair_keys = {p.key for p in inp.pairs}
        self.sorted_keys = sorted(self.pair_keys)
        #: the email of each pair a deletion policy writes to (for the review queue)
        self.deletion_emails: dict[int, str | None] = {}
        #: the pair keys whose values travel to each side
        self.travelling = {
            side: tuple(p.key for p in inp.pairs if p.travels_to(side)) for side in SIDES
        }

    # --- helpers ----------------------------------------------------------------------------

    def values(self, side: str, record: SideRecord) -> dict[str, FieldValue]:
        return record.values(self.inp.side(side).fields)

    def status(self, side: str, link: LinkRow) -> tuple[str, SideRecord | None]:
        rid = link.record_id(side)
        if rid is None:
            return "none", None
        info = self.inp.side(side)
        record = info.get(rid)
        if record is not None:
            return ("archived" if record.archived else "listed"), record
        if info.complete and info.readable and rid not in info.unreadable:
            return "gone", None
        return "unlisted", None

    def current_hashes(
        self, side: str, link: LinkRow, record: SideRecord | None
    ) -> dict[str, str] | None:
        """This side's field hashes now: from the record when it changed, else its base."""
        if record is not None and (record.changed or not link.has_base(side)):
            return hashes(self.values(side, record))
        return link.base(side)

    def outgoing(
        self,
        source: str,
        record: SideRecord,
        target: SideRecord | None = None,
        creating: bool = False,
    ) -> dict[str, FieldValue] | None:
        """The values ``source`` sends to the other side (rules applied), or None when the
        record must not travel that way.

        An action on a field only the target has (an ``add_tag`` towards an app whose source
        keeps no tags) starts from the target's own value, so it adds rather than replaces;
        when the target record is not at hand, such fields are left alone.
        """
        to = other(source)
        if not self.inp.travels(to):
            return None
        values = self.values(source, record)
        sent = {key: values.get(key) for key in self.travelling[to]}
        if not self.inp.rules(to):
            return sent
        tested = self.rule_values(source, record)
        rules = matching_rules(self.inp.rules(to), tested)
        if rules is None:
            self.filtered(source, record, to, tested)
            return None
        if not rules:
            return sent
        target_keys = {key for key, _, _ in self.inp.side(to).fields.fields} - self.pair_keys
        own: dict[str, FieldValue] = {}
        if target is not None:
            target_values = self.values(to, target)
            own = {k: target_values.get(k) for k in target_keys}
        elif not creating:
            target_keys = set()
        result = apply_actions(rules, {**own, **sent})
        return {
            k: v
            for k, v in result.items()
            if (k in self.pair_keys and k in sent) or (k in target_keys and v != own.get(k))
        }

    def rule_values(self, side: str, record: SideRecord) -> dict[str, FieldValue]:
        """What rules test: the mapped values plus every ``custom.*`` field the record holds,
        mapped or not (a CRM's "deals" column can filter without being synced)."""
        values = self.values(side, record)
        extra = {
            key: normalise("text", raw)
            for key, raw in record.raw.items()
            if key.startswith(CUSTOM_PREFIX) and key not in values and raw not in (None, "")
        }
        return {**extra, **values} if extra else values

    def winner(self, ra: SideRecord | None, rb: SideRecord | None, first: bool) -> str:
        if first and self.inp.initial in ("a-into-b", "b-into-a"):
            return self.inp.initial[0]
        if self.inp.winner != "newest":
            return self.inp.winner
        ta = ra.updated_at if ra else None
        tb = rb.updated_at if rb else None
        if ta is not None and tb is not None and tb > ta:
            return "b"
        return "a"

    def email_of(self, side: str, record: SideRecord) -> str | None:
        value = record.value(self.inp.side(side).fields, EMAIL)
        return value if isinstance(value, str) else None

    # --- the run ----------------------------------------------------------------------------

    def run(self) -> Plan:
        unchanged_a, unchanged_b = self.inp.a.unchanged, self.inp.b.unchanged
        for link in self.inp.links:
            # the common case first: both records listed and unchanged, nothing to decide
            if (
                link.state == "linked"
                and link.a_id in unchanged_a
                and link.b_id in unchanged_b
                and not (unchanged_a[link.a_id].archived or unchanged_b[link.b_id].archived)
            ):
                continue
            self.plan_link(link)
        for side in SIDES:
            info = self.inp.side(side)
            if not info.readable:
                continue
            for rid, record in info.records.items():
                if rid not in self.by_id[side] and not record.archived:
                    self.new[side].append(record)
        new = any(self.new[side] or self.revived[side] for side in SIDES)
        if not self.inp.all_links and (new or self.email_moves()):
            # matching needs every record's email: the executor loads every link and plans again
            self.out = Plan(needs_all_links=True)
            return self.out
        self.check_email_updates()
        self.check_guards()  # new records are never archived: the guards need only the links
        if new:
            self.out.new_records = NewRecords(self)
        return self.out

    def email_moves(self) -> list[tuple[PairPlan, Write]]:
        """The planned updates that give a record a new email."""
        return [
            (pair, write)
            for pair in self.out.pairs
            for write in pair.writes.values()
            if write.record_id is not None and EMAIL in write.values
        ]

    # --- existing links ---------------------------------------------------------------------

    def plan_link(self, link: LinkRow) -> None:
        status_a, ra = self.status("a", link)
        status_b, rb = self.status("b", link)
        if link.state == "linked":
            gone_a = status_a in ("gone", "archived")
            gone_b = status_b in ("gone", "archived")
            if gone_a and gone_b:
                archived = self.archived_by_journal(link, status_a, status_b, ra, rb)
                self.out.pairs.append(archived or PairPlan(link, drop=True))
            elif gone_a or gone_b:
                self.plan_deletion(link, "a" if gone_a else "b", ra, rb)
            else:
                self.plan_merge(link, ra, rb)
            return
        if link.state == "archived":
            if status_a in ("gone", "none") and status_b in ("gone", "none"):
                self.out.pairs.append(PairPlan(link, drop=True))
            return
        # a new-only baseline ("seen") or a tombstone ("gone_a"/"gone_b"): one survivor
        if link.state.startswith("gone_"):
            gone = link.state[-1]
            if (status_a if gone == "a" else status_b) == "listed":
                # the deleted (archived) record is back: the pair is linked again
                self.restore(link, ra, rb)
                return
            survivor = other(gone)
        else:
            survivor = "a" if link.a_id is not None else "b"
        status, record = (status_a, ra) if survivor == "a" else (status_b, rb)
        if status in ("gone", "archived"):
            self.out.pairs.append(PairPlan(link, drop=True))
        elif status == "listed" and record is not None and self.edited(survivor, link, record):
            revived = _copy(link)
            if link.state.startswith("gone_"):
                setattr(revived, f"{other(survivor)}_id", None)
            self.revived[survivor].append((record, revived))

    def archived_by_journal(
        self,
        link: LinkRow,
        status_a: str,
        status_b: str,
        ra: SideRecord | None,
        rb: SideRecord | None,
    ) -> PairPlan | None:
        """A record deleted on one side whose partner a crashed run archived (journaled): the
        outcome that run would have committed, not a pair deleted on both sides."""
        journal = self.inp.journal
        if not journal:
            return None
        for side, status, record in (("a", status_a, ra), ("b", status_b, rb)):
            gone = status_b if side == "a" else status_a
            rid = link.record_id(side)
            if status == "archived" and gone == "gone" and (side, rid) in journal.archives:
                pair = PairPlan(link, state="archived")
                pair.base = {s: link.base_json(s) for s in SIDES}
                pair.fp = {s: link.fp(s) for s in SIDES}
                if record is not None:
                    pair.base[side] = encode_base(hashes(self.values(side, record)))
                    pair.fp[side] = record.fp
                return pair
        return None

    def restore(self, link: LinkRow, ra: SideRecord | None, rb: SideRecord | None) -> None:
        restored = _copy(link)
        restored.state = "linked"
        first = restored.base("a") is None or restored.base("b") is None
        if first and (ra is None or rb is None):
            pair = PairPlan(restored)
            pair.base = {s: link.base_json(s) for s in SIDES}
            pair.fp = {"a": None, "b": None}
        else:
            pair = self.merge(restored, ra, rb, first=first)
        pair.state = "linked"
        self.out.pairs.append(pair)

    def edited(self, side: str, link: LinkRow, record: SideRecord) -> bool:
        """Whether a record's mapped values differ from its base (not merely its fingerprint).
        A field holding what a crashed run wrote there (journaled) is not an edit."""
        if not record.changed:
            return False
        now = hashes(self.values(side, record))
        base = link.base(side) or {}
        if now == base:
            return False
        entries = self.inp.journal.sent_to(side, record.id, None) if self.inp.journal else []
        if not entries:
            return True
        base = dict(base)
        seen: set[str] = set()
        for _, entry in entries:
            for key, (sent, _origin, _before) in entry.items():
                if key in seen or now.get(key) != sent:
                    continue
                seen.add(key)
                if sent is None:
                    base.pop(key, None)
                else:
                    base[key] = sent
        return now != base

    def plan_merge(self, link: LinkRow, ra: SideRecord | None, rb: SideRecord | None) -> None:
        changed = {"a": ra is not None and ra.changed, "b": rb is not None and rb.changed}
        if not changed["a"] and not changed["b"]:
            return
        if not link.has_base("a") or not link.has_base("b"):
            # a link without base (a reconciled create): merge once both sides are listed
            if ra is not None and rb is not None:
                self.out.pairs.append(self.merge(link, ra, rb, first=True))
            return
        if (link.a_id in self.inp.a.backed_off) or (link.b_id in self.inp.b.backed_off):
            return
        self.out.pairs.append(self.merge(link, ra, rb, first=False))

    def merge(
        self,
        link: LinkRow,
        ra: SideRecord | None,
        rb: SideRecord | None,
        first: bool,
        known: tuple[str, dict[str, str]] | None = None,
    ) -> PairPlan:
        """Field-level three-way merge of one pair (rule 3).

        ``known`` is, in a first merge, a side whose record has a base of its own (a record
        revived by edit-beats-delete, matched to a new record): what it changed since that
        base is an edit, and wins over the new record's values, empty or not.
        """
        records = {"a": ra, "b": rb}
        current = {s: self.current_hashes(s, link, records[s]) or {} for s in SIDES}
        base = {s: link.base(s) for s in SIDES}
        changed = {"a": ra is not None and ra.changed, "b": rb is not None and rb.changed}
        journaled = self.journal_bases(link, records, current)
        outgoing: dict[str, dict[str, FieldValue] | None] = {"a": None, "b": None}
        filtered = len(self.out.filtered)
        #: a side that sends only the fields it changed since a crashed run's journaled write
        journal_only = {"a": False, "b": False}
        for source in SIDES:
            record = records[source]
            target = other(source)
            if record is None or not (changed[source] or first):
                continue
            if first and self.inp.initial == f"{target}-into-{source}":
                # on the first run the other side is the master copy; but what a person
                # edited since a crashed run wrote it is an edit
                if not journaled:
                    continue
                journal_only[source] = True
            if not self.inp.side(target).writable:
                continue
            outgoing[source] = self.outgoing(source, record, records[target])
        pair = PairPlan(link)
        writes: dict[str, dict[str, FieldValue]] = {"a": {}, "b": {}}
        for source in SIDES:
            # fields only rules set follow whenever the record travels
            for key, value in (outgoing[source] or {}).items():
                if key not in self.pair_keys and not journal_only[source]:
                    new = value_hash(value) if value is not None else None
                    if new != current[other(source)].get(key):
                        writes[other(source)][key] = value
        winner = self.winner(ra, rb, first)
        for key in self.sorted_keys:
            ha, hb = current["a"].get(key), current["b"].get(key)
            if known is not None and current[known[0]].get(key) != known[1].get(key):
                changed_a, changed_b = known[0] == "a", known[0] == "b"
            elif key in journaled:
                # a crashed run's write: the base is what it sent, and what that came from
                base_a, base_b = journaled[key]
                changed_a, changed_b = ha != base_a, hb != base_b
            elif first:
                changed_a = changed_b = True
                if ha is None or hb is None:
                    # an empty value never blanks a filled one without a base
                    changed_a, changed_b = ha is not None, hb is not None
            else:
                changed_a = changed["a"] and ha != (base["a"] or {}).get(key)
                changed_b = changed["b"] and hb != (base["b"] or {}).get(key)
            if not changed_a and not changed_b:
                continue
            if changed_a and changed_b:
                if ha == hb:
                    continue
                source = winner
                pair.conflicts += (
                    Conflict(
                        self.email_for(ra, rb),
                        key,
                        self.peek("a", ra, key),
                        self.peek("b", rb, key),
                        winner,
                    ),
                )
            else:
                source = "a" if changed_a else "b"
            target = other(source)
            sent = outgoing[source]
            if sent is None or key not in sent or (journal_only[source] and key not in journaled):
                continue
            value = sent[key]
            target_hash = current[target].get(key)
            new_hash = value_hash(value) if value is not None else None
            if new_hash != target_hash:
                writes[target][key] = value
        for target in SIDES:
            if not writes[target]:
                continue
            rid = link.record_id(target)
            if not self.inp.side(target).readable:
                # a write-only app takes whole records (an upsert): send everything
                sent = outgoing[other(target)] or {}
                writes[target] = {**sent, **writes[target]}
            pair.writes[target] = Write(
                target,
                rid,
                writes[target],
                email=self.email_for(ra, rb),
                old_email_hash=current[target].get(EMAIL),
                before={key: current[target].get(key) for key in writes[target]},
            )
        if pair.writes:
            # the pair is written, which settles both records: a side whose changes no rule
            # let through needs no decision of its own (it would be deleted at the commit)
            del self.out.filtered[filtered:]
        for side in SIDES:
            pair.base[side] = encode_base(_after(current[side], writes[side]))
            pair.fp[side] = self.fp_after(side, link, records[side], writes[side])
        pair.matched = link.id is None
        return pair

    def journal_bases(
        self,
        link: LinkRow,
        records: dict[str, SideRecord | None],
        current: dict[str, dict[str, str]],
    ) -> dict[str, tuple[str | None, str | None]]:
        """The fields a run that died before committing had written to this pair, with the
        bases they stand for: field key → (base a, base b).

        A target holding what was sent holds syncd's own write; one holding neither that nor
        what it held before was edited since by a person; one holding what it held before
        never got the write (an older entry may still explain it)."""
        journal = self.inp.journal
        if not journal:
            return {}
        found: dict[str, tuple[str | None, str | None]] = {}
        for target in SIDES:
            if records[target] is None:
                continue
            source = other(target)
            entries = journal.sent_to(target, link.record_id(target), link.record_id(source))
            for created, entry in entries:
                for key, (sent, origin, before) in entry.items():
                    if key in found or key not in self.pair_keys:
                        continue
                    now = current[target].get(key)
                    if now != sent and not created and now == before:
                        continue  # this write never landed
                    found[key] = (sent, origin) if target == "a" else (origin, sent)
        return found

    def fp_after(
        self,
        side: str,
        link: LinkRow,
        record: SideRecord | None,
        written: dict[str, FieldValue],
    ) -> str | None:
        """The fingerprint the record will have once written, predicted where possible, so that
        the next run need not normalise it again. A wrong guess only costs that work."""
        if not written:
            return record.fp if record is not None else link.fp(side)
        if self.inp.side(side).versioned:
            return None  # the app gives the record a new revision: the write result tells it
        if record is None and link.record_id(side) is not None:
            return None  # an update of a record we did not list: its other fields are unknown
        fields = self.inp.side(side).fields
        names = {key: name for key, name, _ in fields.fields}
        raw: dict[str, RawValue] = dict(record.raw) if record is not None else {}
        for key, value in written.items():
            if key in names:
                raw[names[key]] = to_raw(value)
        return fields.fingerprint(raw, record.archived if record is not None else False)

    def peek(self, side: str, record: SideRecord | None, key: str) -> FieldValue:
        return self.values(side, record).get(key) if record is not None else None

    def email_for(self, ra: SideRecord | None, rb: SideRecord | None) -> str | None:
        for side, record in (("a", ra), ("b", rb)):
            if record is not None:
                email = self.email_of(side, record)
                if email:
                    return email
        return None

    def plan_deletion(
        self, link: LinkRow, deleted: str, ra: SideRecord | None, rb: SideRecord | None
    ) -> None:
        survivor = other(deleted)
        record = ra if survivor == "a" else rb
        edited = record is not None and self.edited(survivor, link, record)
        deleted_record = rb if survivor == "a" else ra
        was_deleted = deleted_record is None  # absent from a full listing, not archived
        if edited and was_deleted and record is not None and self.inp.travels(deleted):
            # edit beats delete: the survivor is created again where it was deleted
            revived = _copy(link)
            if deleted == "a":
                revived.a_id = None
            else:
                revived.b_id = None
            self.revived[survivor].append((record, revived))
            return
        pair = PairPlan(link, state=f"gone_{deleted}")
        pair.base = {s: link.base_json(s) for s in SIDES}
        pair.fp = {s: link.fp(s) for s in SIDES}
        if record is not None:
            # the survivor as it is now: only a later edit of it counts as one
            pair.base[survivor] = encode_base(hashes(self.values(survivor, record)))
            pair.fp[survivor] = record.fp
        if not self.inp.travels(survivor):
            self.out.pairs.append(pair)
            return
        policy = self.inp.deletions
        if policy == "review":
            if not edited:
                # held for a person; the link stays as it is until they decide
                self.hold(link, deleted, record)
                return
        elif policy == "archive" and self.inp.side(survivor).can_archive:
            pair.archive = (survivor,)
            pair.state = "archived"
            self.deletion_emails[id(pair)] = self.email_for(ra, rb)
        elif policy == "tag" and record is not None and self.inp.side(survivor).fields.has("tags"):
            # an app that keeps no tags cannot be tagged: no write is planned, and so none is
            # counted (config refuses this setup; the engine never claims a write regardless)
            values = self.values(survivor, record)
            tags = values.get("tags")
            current = set(tags) if isinstance(tags, frozenset) else set()
            if self.inp.deletion_tag not in current:
                new_tags = frozenset(current | {self.inp.deletion_tag})
                pair.writes[survivor] = Write(
                    survivor,
                    record.id,
                    {"tags": new_tags},
                    email=self.email_of(survivor, record),
                    before={"tags": hashes(values).get("tags")},
                )
                pair.base[survivor] = encode_base(_after(hashes(values), {"tags": new_tags}))
                pair.fp[survivor] = None
                self.deletion_emails[id(pair)] = self.email_for(ra, rb)
        self.out.pairs.append(pair)

    def hold(self, link: LinkRow, deleted: str, record: SideRecord | None) -> None:
        """Hold the deletion of ``link``'s record on ``deleted`` for review."""
        survivor = other(deleted)
        info = self.inp.side(survivor)
        if info.can_archive:
            action = "archive"
        elif info.fields.has("tags"):
            action = "tag"
        else:
            action = "forget"
        email = self.email_of(survivor, record) if record is not None else None
        why = (
            "deleted"
            if self.inp.side(deleted).get(link.record_id(deleted) or "") is None
            else "archived"
        )
        self.out.held.append(
            Held(
                None,
                link.id or 0,
                deleted,
                link.record_id(deleted),
                survivor,
                link.record_id(survivor),
                email,
                action,
                f"{why} on side {deleted}",
            )
        )

    def hold_mass_deletion(self) -> None:
        """``on_mass_deletion = "review"``: every deletion this run would propagate is held."""
        kept = []
        for pair in self.out.pairs:
            if (
                pair.link.state == "linked"
                and pair.state in ("archived", "gone_a", "gone_b")
                and (pair.archive or pair.writes)
            ):
                survivor = pair.archive[0] if pair.archive else next(iter(pair.writes))
                deleted = other(survivor)
                action = "archive" if pair.archive else "tag"
                self.out.held.append(
                    Held(
                        None,
                        pair.link.id or 0,
                        deleted,
                        pair.link.record_id(deleted),
                        survivor,
                        pair.link.record_id(survivor),
                        self.deletion_emails.get(id(pair)),
                        action,
                        f"deleted on side {deleted} (one of a mass deletion)",
                    )
                )
                continue
            kept.append(pair)
        self.out.pairs = kept

    # --- new records ------------------------------------------------------------------------

    def plan_new_record(
        self,
        source: str,
        target: str,
        record: SideRecord,
        revived: LinkRow | None,
        index: dict[str, Holders],
        phone_index: dict[str, Holders] | None,
        taken: dict[str, set[str]],
    ) -> None:
        self.values(source, record)  # the whole view: a merge or a create needs it anyway
        email = self.email_of(source, record)
        key: str | None = value_hash(email) if email else None
        lookup = index
        if key is None and phone_index is not None:
            phone = self.phone_of(source, record)
            key = value_hash(phone) if phone else None
            lookup = phone_index
        if key is None:
            self.issue(
                source,
                record,
                "excluded",
                "no email address: syncd matches contacts by email and will not create one "
                "it could not match again",
            )
            return
        mine = [rid for rid in lookup[source].get(key) if rid != record.id]
        if mine:
            self.issue(
                source,
                record,
                "ambiguous",
                f"{display(email) or 'this phone number'} is held by {len(mine) + 1} records on "
                f"side {source} ({', '.join([record.id, *mine][:5])}); syncd will not guess",
            )
            return
        theirs = lookup[target].get(key)
        target_info = self.inp.side(target)
        if len(theirs) > 1:
            self.issue(
                source,
                record,
                "ambiguous",
                f"{display(email)} is held by {len(theirs)} records on side {target} "
                f"({', '.join(theirs[:5])}); syncd will not guess",
            )
            return
        if theirs:
            match_id = theirs[0]
            match = target_info.get(match_id)
            match_link = self.by_id[target].get(match_id)
            if match is None or (match_link is not None and match_link.state not in ("seen",)):
                self.issue(
                    source,
                    record,
                    "excluded",
                    f"{display(email)} is already used on side {target} by record {match_id}, "
                    "which is linked to another record",
                )
                return
            taken[target].add(match_id)
            records = {source: record, target: match}
            link_id = revived.id if revived else (match_link.id if match_link else None)
            if revived is not None and match_link is not None and match_link.id != revived.id:
                self.out.pairs.append(PairPlan(match_link, drop=True))
            link = LinkRow(link_id, records["a"].id, records["b"].id)
            if self.inp.initial == "new-only":
                self.baseline(link, records["a"], records["b"])
                return
            revived_base = revived.base(source) if revived is not None else None
            pair = self.merge(
                link,
                records["a"],
                records["b"],
                first=True,
                known=(source, revived_base) if revived_base is not None else None,
            )
            pair.matched = True
            self.out.pairs.append(pair)
            self.resolve(source, record)
            self.resolve(target, match)
            # the pair holds what it writes; the match's own turn in the queue comes later
            # (it is skipped then, taken): a first merge would hold half a side's views
            match.forget_view()
            return
        # nothing matches on the other side: create it there
        if self.inp.initial in ("new-only", f"{target}-into-{source}"):
            # the first run leaves this record where it is: remember it as it is, so that it
            # travels once it changes
            link = revived or LinkRow(None, None, None)
            link.state = "seen"
            setattr(link, f"{source}_id", record.id)
            self.baseline(
                link, record if source == "a" else None, record if source == "b" else None
            )
            return
        if not target_info.writable:
            return
        sent = self.outgoing(source, record, creating=True)
        if sent is None:
            return
        source_values = self.values(source, record)
        values: dict[str, FieldValue] = {k: v for k, v in sent.items() if v is not None}
        if values == source_values:
            values = source_values  # one dictionary, not two, for each of 100,000 creates
        source_hashes = hashes(source_values)
        # what is sent is mostly the source's own values: their hashes are known
        target_hashes = {
            k: source_hashes[k] if source_values.get(k) is v else value_hash(v)
            for k, v in values.items()
        }
        link = revived or LinkRow(None, None, None)
        link.state = "linked"
        setattr(link, f"{source}_id", record.id)
        setattr(link, f"{target}_id", None)
        pair = PairPlan(link)
        pair.writes[target] = Write(target, None, values, source_id=record.id, email=email)
        pair.base[source] = encode_base(source_hashes)
        pair.base[target] = (
            pair.base[source] if target_hashes == source_hashes else encode_base(target_hashes)
        )
        pair.fp[source] = record.fp
        pair.fp[target] = self.fp_after(target, link, None, values)
        self.out.pairs.append(pair)
        # the email is now taken on the target, for the records still to be planned
        index[target].add(key, f"(new from {source} {record.id})")
        self.resolve(source, record)

    def baseline(self, link: LinkRow, ra: SideRecord | None, rb: SideRecord | None) -> None:
        """``new-only`` first run: remember records as they are, write nothing."""
        pair = PairPlan(link, state=link.state if link.state == "seen" else "linked")
        pair.matched = ra is not None and rb is not None
        for side, record in (("a", ra), ("b", rb)):
            pair.base[side] = encode_base(hashes(self.values(side, record))) if record else None
            pair.fp[side] = record.fp if record else None
        self.out.pairs.append(pair)

    def email_index(self, side: str, after_plan: bool = False) -> Holders:
        """Email hash → ids of every record known on ``side`` (listed, or linked); with
        ``after_plan``, as it will be once the planned email changes are written."""
        info = self.inp.side(side)
        index = Holders()
        for rid, link in self.by_id[side].items():
            record = info.records.get(rid)
            if record is not None:
                email = self.email_of(side, record)
                if email:
                    index.add(value_hash(email), rid)
                continue
            if info.complete and rid not in info.unchanged:
                continue  # not listed in a full listing: it no longer exists
            # unchanged or not listed: as it was when last synced
            base = link.base(side)
            if base and EMAIL in base:
                index.add(base[EMAIL], rid)
        for rid, record in info.records.items():
            if rid in self.by_id[side] or record.archived:
                continue
            email = self.email_of(side, record)
            if email:
                index.add(value_hash(email), rid)
        if after_plan:
            for pair in self.out.pairs:
                write = pair.writes.get(side)
                if write is None or write.record_id is None or EMAIL not in write.values:
                    continue
                if write.old_email_hash is not None:
                    index.remove(write.old_email_hash, write.record_id)
                new_email = write.values[EMAIL]
                if isinstance(new_email, str):
                    index.add(value_hash(new_email), write.record_id)
        return index

    def phone_of(self, side: str, record: SideRecord) -> str | None:
        fields = self.inp.side(side).fields
        for key in PHONE_KEYS:
            value = record.value(fields, key)
            if isinstance(value, str):
                return value
        return None

    def phone_index(self, side: str) -> Holders:
        index = Holders()
        info = self.inp.side(side)
        for rid in (*info.records, *info.unchanged):
            record = info.get(rid)
            if record is None or record.archived or self.email_of(side, record):
                continue
            phone = self.phone_of(side, record)
            if phone:
                index.add(value_hash(phone), rid)
        return index

    # --- checks over the whole plan ---------------------------------------------------------

    def check_email_updates(self) -> None:
        """Never give a record an email another record on that side holds (rule 1)."""
        moving = self.email_moves()
        if not moving:
            return
        index = {side: self.email_index(side) for side in SIDES}
        for pair, write in moving:
            new_email = write.values[EMAIL]
            if not isinstance(new_email, str) or write.record_id is None:
                continue
            holders = [
                rid
                for rid in index[write.side].get(value_hash(new_email))
                if rid != write.record_id
            ]
            if not holders:
                continue
            del write.values[EMAIL]
            # both sides keep their old email in the base: the change stays pending, is
            # reported again and goes through once the other record gives the email up
            for side in SIDES:
                raw = pair.base.get(side)
                if raw is None:
                    continue
                base = json.loads(raw)
                old = (pair.link.base(side) or {}).get(EMAIL)
                if old is not None:
                    base[EMAIL] = old
                else:
                    base.pop(EMAIL, None)
                pair.base[side] = encode_base(base)
            pair.fp[other(write.side)] = None
            if not write.values:
                del pair.writes[write.side]
            self.out.issues.append(
                IssueRow(
                    write.side,
                    write.record_id,
                    "excluded",
                    f"email not changed to {new_email}: record {holders[0]} on side "
                    f"{write.side} already has it",
                    new_email,
                )
            )

    def check_guards(self) -> None:
        """Rule 7: an empty listing, or a mass archive, stops the run unless forced."""
        if self.inp.all_links:
            linked = sum(1 for link in self.inp.links if link.state == "linked")
            linked_on = {
                side: sum(
                    1 for link in self.inp.links if link.state == "linked" and link.record_id(side)
                )
                for side in SIDES
            }
        else:
            linked, linked_on = self.inp.linked_count, self.inp.linked_on
        for side in SIDES:
            info = self.inp.side(side)
            if info.readable and info.complete and not info.count() and linked_on[side]:
                self.out.guard = (
                    f"side {side} listed no records at all while {linked} links exist; "
                    "refusing to treat every record as deleted (use --force if this is right)"
                )
                return
        limit = max(10, linked // 10)
        for side in SIDES:
            count = len(self.out.archives(side))
            if self.inp.on_mass_deletion == "review":
                count += sum(
                    1
                    for pair in self.out.pairs
                    if pair.link.state == "linked"
                    and pair.state.startswith("gone_")
                    and side in pair.writes
                )
                if count > limit:
                    self.hold_mass_deletion()
                    return
                continue
            if count > limit:
                self.out.guard = (
                    f"this run would archive or delete {count} records on side {side}, more "
                    f"than the limit of {limit} (10% of {linked} links, at least 10); "
                    "use --force if this is right"
                )
                return

    def issue(self, side: str, record: SideRecord, kind: str, reason: str) -> None:
        self.out.issues.append(IssueRow(side, record.id, kind, reason, self.email_of(side, record)))

    def filtered(
        self, source: str, record: SideRecord, to: str, tested: dict[str, FieldValue]
    ) -> None:
        """Remember that ``record`` did not travel to ``to``: no rule of that direction
        matched (``syncd explain`` tells which condition failed). Only filtered records pay."""
        reason = (
            f"not sent to side {to}: no rule of {source}-to-{to} matched; "
            + why_no_rule_matched(self.inp.rules(to), tested)
        )
        self.out.filtered.append(
            IssueRow(source, record.id, "filtered", reason, self.email_of(source, record))
        )

    def resolve(self, side: str, record: SideRecord) -> None:
        self.out.resolved.append((side, record.id))


class NewRecords:
    """The run's new records, matched by email and planned a slice at a time.

    A first merge has a new record for nearly every contact of both sides; planned at once,
    every pair (link, bases, writes) would be held until written. The executor plans a slice,
    writes it and lets it go. Matching sees every record from the start (the indexes are made
    here, over the whole listing), and what a slice plans (a create taking an email on its
    target, a record taken by a match) is known to the slices after it.
    """

    def __init__(self, planner: _Planner) -> None:
        self.planner = planner
        self.index = {side: planner.email_index(side, after_plan=True) for side in SIDES}
        self.phone_index = (
            {side: planner.phone_index(side) for side in SIDES} if planner.inp.match_phone else None
        )
        self.taken: dict[str, set[str]] = {"a": set(), "b": set()}
        # records revived by edit-beats-delete first: one typed in again on the other side
        # joins its revived partner instead of being reported as already used; then each
        # side's new records, as the planner listed them (no tuple per record)
        self.segments: list[tuple[str, list[SideRecord] | list[tuple[SideRecord, LinkRow]]]] = [
            *((source, planner.revived[source]) for source in SIDES),
            *self._resends_first(planner),
        ]
        self.total = sum(len(items) for _, items in self.segments)
        planner.new = {"a": [], "b": []}
        planner.revived = {"a": [], "b": []}
        self.position = 0
        #: the segment being planned, and the position in it
        self.segment = 0
        self.offset = 0

    @staticmethod
    def _resends_first(planner: _Planner) -> list[tuple[str, list[SideRecord]]]:
        """Each side's new records, those a crashed run was creating on the other side first.

        Their create is sent again under its idempotency key, and an app that kept the key
        answers with the record it made then, whose email a person may have changed since:
        that record is syncd's own copy, linked by the answer. Planned after it, the record
        would look new, and be copied back, a duplicate."""
        creates = planner.inp.journal.creates if planner.inp.journal else {}
        if not creates:
            return [(source, planner.new[source]) for source in SIDES]
        first: list[tuple[str, list[SideRecord]]] = []
        rest: list[tuple[str, list[SideRecord]]] = []
        for source in SIDES:
            target = other(source)
            resent: list[SideRecord] = []
            others: list[SideRecord] = []
            for record in planner.new[source]:
                (resent if (target, record.id) in creates else others).append(record)
            first.append((source, resent))
            rest.append((source, others))
        return first + rest

    @property
    def remaining(self) -> int:
        return self.total - self.position

    def _take(self) -> tuple[str, SideRecord, LinkRow | None]:
        """The next record of the queue (let go by the queue: the slice's plan holds it)."""
        while True:
            source, items = self.segments[self.segment]
            if self.offset < len(items):
                break
            self.segments[self.segment] = (source, [])
            self.segment += 1
            self.offset = 0
        item = items[self.offset]
        items[self.offset] = None  # type: ignore[call-overload]
        self.offset += 1
        if isinstance(item, tuple):
            return source, item[0], item[1]
        return source, item, None

    def next_slice(self, limit: int) -> Plan:
        """Plan the next ``limit`` new records (fewer at the end)."""
        planner = self.planner
        planner.out = out = Plan()
        end = min(self.total, self.position + limit)
        for _ in range(self.position, end):
            source, record, revived = self._take()
            if record.id not in self.taken[source] and record.id not in (
                planner.inp.side(source).backed_off
            ):
                planner.plan_new_record(
                    source,
                    other(source),
                    record,
                    revived,
                    self.index,
                    self.phone_index,
                    self.taken,
                )
            record.forget_view()  # what the plan needs it holds; the rest can go
            out.covered.append((source, record.id))
        self.position = end
        return out


class Holders:
    """Email (or phone) hash → the ids of the records that hold it on one side: a single
    holder is kept as its id, several as a list, and a hash (hex text) as the number it spells,
    half the size (a first merge indexes 200,000 emails, nearly all held once)."""

    __slots__ = ("_by_key",)

    def __init__(self) -> None:
        self._by_key: dict[int | str, str | list[str]] = {}

    def get(self, key: str) -> list[str]:
        found = self._by_key.get(_compact(key))
        if found is None:
            return []
        return [found] if isinstance(found, str) else found

    def add(self, key: str, rid: str) -> None:
        compact = _compact(key)
        found = self._by_key.get(compact)
        if found is None:
            self._by_key[compact] = rid
        elif isinstance(found, str):
            self._by_key[compact] = [found, rid]
        else:
            found.append(rid)

    def remove(self, key: str, rid: str) -> None:
        """Forget one holder ``rid`` of ``key`` (if it holds it)."""
        compact = _compact(key)
        found = self._by_key.get(compact)
        if found == rid:
            del self._by_key[compact]
        elif isinstance(found, list) and rid in found:
            found.remove(rid)


_HASH_LENGTH = len(value_hash(""))


def _compact(key: str) -> int | str:
    """A value hash (lower-case hex of a fixed length) as the number it spells; any other text
    as it is (a number is never equal to text, and only same-length hashes become numbers)."""
    if len(key) == _HASH_LENGTH and not key.strip("0123456789abcdef"):
        return int(key, 16)
    return key


def _copy(link: LinkRow) -> LinkRow:
    return LinkRow(
        link.id,
        link.a_id,
        link.b_id,
        link.state,
        link.base_a_json,
        link.base_b_json,
        link.fp_a,
        link.fp_b,
    )


def _after(current: dict[str, str], written: dict[str, FieldValue]) -> dict[str, str]:
    """Field hashes once ``written`` has been applied over ``current``."""
    result = dict(current)
    for key, value in written.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value_hash(value)
    return result


def count_actions(pairs: Iterable[PairPlan]) -> int:
    return sum(len(p.writes) + len(p.archive) for p in pairs)
