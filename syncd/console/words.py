"""A sync's settings, field mapping and rules in plain words, for the console's sync page.

Pure functions of a :class:`~syncd.config.SyncConfig` (no I/O): what the page shows, and what
its tests check, without a browser.
"""

from __future__ import annotations

from dataclasses import dataclass

from syncd.config import SyncConfig, resolve_field
from syncd.config_values import format_seconds
from syncd.engine.fields import FieldPair, build_pairs
from syncd.engine.rules import describe_rule


@dataclass(frozen=True)
class Setting:
    """One line of the settings: what it is, its value as configured, and what it means."""

    label: str
    value: str
    words: str

    @property
    def sentence(self) -> str:
        return sentence(self.words)


@dataclass(frozen=True)
class MappingRow:
    """One row of the field mapping: field in app a ⇄ field in app b."""

    key: str
    a_field: str
    b_field: str
    #: ``⇄``, ``→`` (a to b), ``←`` (b to a) or ``·`` (neither way: read-only)
    arrow: str
    direction: str
    custom: bool


@dataclass(frozen=True)
class RuleSet:
    """The rules of one direction, as sentences."""

    source: str
    target: str
    title: str
    sentences: tuple[str, ...]
    #: what happens with no rule: every record travels; with rules, only matching ones
    note: str

    @property
    def note_sentence(self) -> str:
        return sentence(self.note)


def sentence(words: str) -> str:
    """``two-way: …`` → ``Two-way: ….`` (only the first letter raised, unlike str.capitalize)."""
    if not words:
        return words
    return words[0].upper() + words[1:] + ("" if words.endswith(".") else ".")


def app_name(sync: SyncConfig, side: str) -> str:
    """``A (xero)``: a side as the page names it."""
    return f"{side.upper()} ({sync.side(side).connector})"


def duration_words(seconds: float) -> str:
    """``600`` → ``every 10 minutes``; ``3600`` → ``every hour``; ``90`` → ``every 90 seconds``."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"every {unit}" if count == 1 else f"every {count} {unit}s"
    return f"every {seconds:g} seconds"


def settings_in_words(sync: SyncConfig) -> list[Setting]:
    a, b = app_name(sync, "a"), app_name(sync, "b")
    directions = {
        "two-way": f"two-way: changes made in {a} or in {b} travel to the other",
        "a-to-b": f"one way, from {a} to {b}: what changes in {b} is never sent back",
        "b-to-a": f"one way, from {b} to {a}: what changes in {a} is never sent back",
    }
    initial = {
        "merge": "the first run merges both sides: contacts with the same email are linked, "
        "the others are created on the other side",
        "new-only": "the first run only remembers what exists on both sides; a contact syncs "
        "once it is added or edited afterwards",
        "a-into-b": f"the first run copies {a} into {b}: where both have a contact, {a}'s "
        "values win",
        "b-into-a": f"the first run copies {b} into {a}: where both have a contact, {b}'s "
        "values win",
    }
    winners = {
        "a": f"when the same field was changed on both sides, {a}'s value wins",
        "b": f"when the same field was changed on both sides, {b}'s value wins",
        "newest": "when the same field was changed on both sides, the value of the contact "
        "updated last wins",
    }
    deletions = {
        "ignore": "a contact deleted on one side is left alone on the other",
        "tag": "a contact deleted on one side gets the tag "
        f"{sync.deletion_tag} on the other (nothing is deleted)",
        "archive": "a contact deleted on one side is archived on the other (where the app can "
        "archive)",
        "review": "a contact deleted on one side is held for your review; it is archived on "
        "the other side only when you approve",
    }
    matching = {
        "email": "contacts are matched by email address",
        "email+phone": "contacts are matched by email address, and by phone number when they "
        "have no email",
    }
    interval = duration_words(sync.interval)
    return [
        Setting("Direction", sync.direction, directions.get(sync.direction, sync.direction)),
        Setting(
            "Interval",
            format_seconds(sync.interval),
            f"runs {interval}" + ("" if sync.enabled else " (disabled in its file)"),
        ),
        Setting("Initial mode", sync.initial, initial.get(sync.initial, sync.initial)),
        Setting("Winner", sync.winner, winners.get(sync.winner, sync.winner)),
        Setting("Deletions", sync.deletions, deletions.get(sync.deletions, sync.deletions)),
        Setting("Matching", sync.match, matching.get(sync.match, sync.match)),
        Setting(
            "Full listing",
            format_seconds(sync.full_every),
            f"both sides are listed in full {duration_words(sync.full_every)}, which is when "
            "deletions are noticed",
        ),
    ]


def _arrow(pair: FieldPair) -> tuple[str, str]:
    if pair.a_to_b and pair.b_to_a:
        return "⇄", "both ways"
    if pair.a_to_b:
        return "→", "A to B only"
    if pair.b_to_a:
        return "←", "B to A only"
    return "·", "neither way (read-only on the receiving side)"


def mapping_table(sync: SyncConfig) -> list[MappingRow]:
    """The fields that travel, default pairs first, then the sync's own ``[[fields]]``."""
    custom = set()
    for mapping in sync.fields:
        a_name = resolve_field(sync.a.connector_class, mapping.a)
        b_name = resolve_field(sync.b.connector_class, mapping.b)
        custom.add((a_name, b_name))
    rows = []
    for pair in build_pairs(sync):
        arrow, direction = _arrow(pair)
        rows.append(
            MappingRow(
                key=pair.key,
                a_field=pair.a,
                b_field=pair.b,
                arrow=arrow,
                direction=direction,
                custom=(pair.a, pair.b) in custom,
            )
        )
    return rows


def rules_in_words(sync: SyncConfig) -> list[RuleSet]:
    """Per direction the sync travels: its rules as sentences."""
    sets = []
    for source, target, rules in (
        ("a", "b", sync.rules_a_to_b),
        ("b", "a", sync.rules_b_to_a),
    ):
        if sync.direction not in ("two-way", f"{source}-to-{target}"):
            continue
        title = f"From {app_name(sync, source)} to {app_name(sync, target)}"
        if rules:
            note = (
                "a contact travels only when at least one rule matches; the actions of "
                "every matching rule apply"
            )
        else:
            note = "no rules: every contact travels"
        sets.append(
            RuleSet(source, target, title, tuple(describe_rule(rule) for rule in rules), note)
        )
    return sets
