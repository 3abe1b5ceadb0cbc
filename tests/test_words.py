"""The sync page's pure helpers: settings in plain words, the field mapping as a table, rules as
sentences (syncd/console/words.py, syncd/engine/rules.py), and the run chart's SVG
(syncd/console/charts.py)."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import memory_sync

from syncd.config import DELETIONS, Action, Condition, Rule
from syncd.console.charts import bars, runs_chart, series_values
from syncd.console.words import (
    duration_words,
    mapping_table,
    rules_in_words,
    settings_in_words,
)
from syncd.engine.rules import describe_rule, why_no_rule_matched
from syncd.plugins import Plugins

SVG = "{http://www.w3.org/2000/svg}"


def test_a_rule_reads_as_a_sentence() -> None:
    rule = Rule(
        (Condition("tags", "contains", "customer"),),
        (Action("add_tag", "tags", "from-xero"),),
    )
    assert describe_rule(rule) == "IF tags contains customer THEN add tag from-xero"
    several = Rule(
        (
            Condition("email", "matches", r"@acme\.com$"),
            Condition("company", "is_set"),
            Condition("country", "in", ["GB", "IE"]),
        ),
        (Action("set", "title", "Customer"), Action("remove_tag", "tags", "lead")),
        match="any",
    )
    assert describe_rule(several) == (
        r"IF email matches /@acme\.com$/ OR company is set OR country is one of GB, IE "
        "THEN set title to Customer AND remove tag lead"
    )
    assert describe_rule(Rule((), (Action("set", "notes", ""),))) == "ALWAYS clear notes"
    assert describe_rule(Rule((Condition("city", "is_empty"),), ())) == (
        "IF city is empty THEN sync it"
    )


def test_why_no_rule_matched_names_the_condition_that_failed() -> None:
    rules = [
        Rule((Condition("tags", "contains", "customer"), Condition("city", "is_set")), ()),
        Rule((Condition("email", "equals", "x@y.com"), Condition("city", "is_set")), (), "any"),
    ]
    why = why_no_rule_matched(rules, {"city": "Leeds", "tags": frozenset({"lead"})})
    assert why.startswith("rule 1 (IF tags contains customer AND city is set THEN sync it): ")
    assert "tags contains customer does not hold" in why
    assert "rule 2 (" in why and "none of its conditions holds" not in why.split("rule 2")[0]


def test_the_settings_read_as_plain_words(tmp_path: Path, plugins: Plugins) -> None:
    sync = memory_sync(
        tmp_path,
        plugins,
        extra="""
        direction = "a-to-b"
        interval = "15m"
        initial = "new-only"
        winner = "newest"
        deletions = "tag"
        deletion_tag = "gone"
        """,
    )
    words = {s.label: s.words for s in settings_in_words(sync)}
    assert words["Direction"] == (
        "one way, from A (memory) to B (memory): what changes in B (memory) is never sent back"
    )
    assert words["Interval"] == "runs every 15 minutes"
    assert words["Initial mode"].startswith("the first run only remembers what exists")
    assert "updated last wins" in words["Winner"]
    assert "gets the tag gone on the other" in words["Deletions"]
    assert words["Full listing"].startswith("both sides are listed in full every day")


@pytest.mark.parametrize("policy", DELETIONS)
def test_every_deletion_policy_reads_as_a_sentence(
    tmp_path: Path, plugins: Plugins, policy: str
) -> None:
    sync = memory_sync(tmp_path, plugins, extra=f'deletions = "{policy}"')
    words = {s.label: s.words for s in settings_in_words(sync)}["Deletions"]
    assert words.startswith("a contact deleted on one side"), words


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (60, "every minute"),
        (600, "every 10 minutes"),
        (3600, "every hour"),
        (90, "every 90 seconds"),
        (172800, "every 2 days"),
    ],
)
def test_durations_in_words(seconds: float, words: str) -> None:
    assert duration_words(seconds) == words


def test_the_mapping_table_has_directions_and_tells_custom_from_default(
    tmp_path: Path, plugins: Plugins
) -> None:
    sync = memory_sync(
        tmp_path,
        plugins,
        extra="""
        [[fields]]
        a = "notes"
        b = "title"
        direction = "a-to-b"
        """,
    )
    rows = {row.key: row for row in mapping_table(sync)}
    assert rows["email"].arrow == "⇄" and not rows["email"].custom
    assert rows["email"].a_field == "email" and rows["email"].b_field == "email"
    custom = [row for row in rows.values() if row.custom]
    assert len(custom) == 1
    assert (custom[0].a_field, custom[0].b_field, custom[0].arrow) == ("notes", "title", "→")
    assert custom[0].direction == "A to B only"
    # the custom pair replaced the default pairs of its fields
    assert "title" not in {row.b_field for row in rows.values() if not row.custom}


def test_rules_per_direction_as_sentences(tmp_path: Path, plugins: Plugins) -> None:
    sync = memory_sync(
        tmp_path,
        plugins,
        extra="""
        [[rules.a-to-b]]
        if = [ { field = "tags", op = "contains", value = "customer" } ]
        then = [ { add_tag = "from-xero" } ]
        """,
    )
    sets = rules_in_words(sync)
    assert [s.title for s in sets] == [
        "From A (memory) to B (memory)",
        "From B (memory) to A (memory)",
    ]
    assert sets[0].sentences == ("IF tags contains customer THEN add tag from-xero",)
    assert sets[1].sentences == () and sets[1].note == "no rules: every contact travels"


@dataclass
class FakeRun:
    id: int
    started_at: datetime
    outcome: str = "success"
    counts: dict[str, int] = field(default_factory=dict)


def run(number: int, **counts: int) -> FakeRun:
    return FakeRun(
        number, datetime(2026, 12, 1, 10) + timedelta(minutes=10 * number), counts=counts
    )


def test_the_chart_is_well_formed_svg_with_a_bar_per_series_and_run() -> None:
    runs = [run(1, created_a=100000, created_b=3), run(2, updated_a=3, failed=1), run(3)]
    svg = runs_chart(runs, title="Runs of crm")
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    rects = [r for r in root.iter(f"{SVG}rect") if "bar" in (r.get("class") or "")]
    assert len(rects) == 9
    titles = [r.find(f"{SVG}title").text for r in rects]  # type: ignore[union-attr]
    assert "run 1 (2026-12-01 10:10 UTC, success): 100003 created" in titles
    assert "run 2 (2026-12-01 10:20 UTC, success): 1 failed" in titles
    assert "style=" not in svg and "<script" not in svg
    assert "100003 created, 3 updated, 1 failed" in root.find(f"{SVG}desc").text  # type: ignore[union-attr,operator]


def test_everything_in_the_chart_is_escaped() -> None:
    hostile = '<img src=x onerror=alert(1)>"&'
    svg = runs_chart([FakeRun(1, datetime(2026, 12, 1), outcome=hostile, counts={})], title=hostile)
    root = ET.fromstring(svg)
    assert root.find(f"{SVG}title").text == hostile  # type: ignore[union-attr]
    assert "<img" not in svg and "&lt;img" in svg


def test_no_runs_draws_an_empty_chart_that_says_so() -> None:
    root = ET.fromstring(runs_chart([]))
    assert any(t.text == "no runs yet" for t in root.iter(f"{SVG}text"))


def test_counts_that_are_not_numbers_count_as_nothing() -> None:
    assert series_values({"created_a": "9", "created_b": True, "updated_a": -3, "failed": 2}) == {
        "created": 0,
        "updated": 0,
        "failed": 2,
    }


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=70))
def test_a_larger_count_is_a_taller_bar_and_every_bar_stays_in_the_plot(values: list[int]) -> None:
    drawn = [
        b
        for b in bars([run(i, created_a=v) for i, v in enumerate(values)])
        if b.series == "created"
    ]
    assert len(drawn) == min(len(values), 60)
    shown = list(zip(values[-60:], drawn, strict=True))
    for (a, left), (b, right) in itertools.pairwise(sorted(shown, key=lambda p: p[0])):
        # heights are rounded to 1/100 px: close counts may share one, never go the wrong way,
        # and twice the count is always visibly taller (log scale: about 10 px)
        assert left.height <= right.height if a < b else left.height == right.height
        if b >= 2 * a + 1:
            assert left.height < right.height
    for bar in drawn:
        assert bar.height >= 0 and bar.y >= 0 and bar.y + bar.height <= 220
        assert (bar.value == 0) == (bar.height == 0)
