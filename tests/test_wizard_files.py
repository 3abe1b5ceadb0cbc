"""syncd/config_write.py: the console's edits of sync files (tomlkit), its secret files and the
hash check, on real files."""

from __future__ import annotations

import stat
import textwrap
from pathlib import Path

import pytest

from syncd.config_write import (
    ChangedSinceOpened,
    apply,
    dumps,
    file_hash,
    read_document,
    store_secret,
    validate,
    write_sync,
)
from syncd.plugins import load_plugins

HAND_WRITTEN = textwrap.dedent(
    """\
    # my backup of the CRM, written by hand
    direction = "a-to-b"   # only one way!
    interval = "1h"        # hourly is plenty

    [a]
    connector = "csv"
    path = "people.csv"    # the export

    [b]
    # the copy
    connector = "csv"
    path = "copy.csv"
    """
)


def test_an_edit_keeps_comments_order_and_layout(tmp_path: Path) -> None:
    path = tmp_path / "syncs" / "backup.toml"
    path.parent.mkdir()
    path.write_text(HAND_WRITTEN)
    doc = read_document(path)
    apply(doc, {"interval": "2h", "winner": None}, {"b": {"path": "other.csv"}}, None, None)
    text = dumps(doc)
    assert 'interval = "2h"        # hourly is plenty' in text
    assert "# my backup of the CRM, written by hand" in text
    assert 'direction = "a-to-b"   # only one way!' in text
    assert "# the copy" in text
    assert text.index("direction") < text.index("interval") < text.index("[a]") < text.index("[b]")
    assert 'path = "other.csv"' in text
    assert text.replace('"2h"', '"1h"').replace("other.csv", "copy.csv") == HAND_WRITTEN


def test_fields_and_rules_are_written_as_the_toml_reference_has_them(tmp_path: Path) -> None:
    doc = read_document(tmp_path / "nothing.toml")
    apply(
        doc,
        {"direction": "two-way"},
        {"a": {"connector": "csv", "path": "a.csv"}, "b": {"connector": "csv", "path": "b.csv"}},
        [{"a": "custom.code", "b": "custom.code", "direction": "a-to-b"}],
        {
            "a-to-b": [
                {
                    "if": [{"field": "tags", "op": "contains", "value": "customer"}],
                    "then": [{"add_tag": "from-xero"}],
                }
            ],
            "b-to-a": [],
        },
    )
    text = dumps(doc)
    assert "[[fields]]" in text
    assert "[[rules.a-to-b]]" in text
    assert "b-to-a" not in text
    (tmp_path / "a.csv").write_text("email\n")
    assert validate(text, "x", load_plugins()) == []


def test_a_bad_value_is_a_problem_naming_its_key(tmp_path: Path) -> None:
    text = HAND_WRITTEN.replace('"1h"', '"soon"')
    problems = validate(text, "backup", load_plugins())
    assert [p.key for p in problems] == ["interval"]


def test_a_file_changed_since_it_was_opened_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "syncs" / "backup.toml"
    path.parent.mkdir()
    path.write_text(HAND_WRITTEN)
    opened = file_hash(path)
    path.write_text(HAND_WRITTEN + "\n# someone else\n")
    with pytest.raises(ChangedSinceOpened):
        write_sync(path, "direction = 'two-way'\n", opened)
    assert path.read_text().endswith("# someone else\n")
    write_sync(path, HAND_WRITTEN, file_hash(path))
    assert path.read_text() == HAND_WRITTEN


def test_a_new_file_is_refused_when_one_appeared_meanwhile(tmp_path: Path) -> None:
    path = tmp_path / "syncs" / "new.toml"
    path.parent.mkdir()
    path.write_text("x = 1\n")
    with pytest.raises(ChangedSinceOpened):
        write_sync(path, HAND_WRITTEN, "")


def test_secrets_go_into_0600_files_under_the_state_directory(tmp_path: Path) -> None:
    where = store_secret(tmp_path, "crm", "b", "api_key", "a-long-secret-value")
    assert where.read_text() == "a-long-secret-value"
    assert stat.S_IMODE(where.stat().st_mode) == 0o600
    assert where.is_relative_to(tmp_path)


def test_relative_paths_are_checked_against_the_config_directory(tmp_path: Path) -> None:
    from syncd.config_write import validate_sync

    config = tmp_path / "config"
    (config / "data").mkdir(parents=True)
    (config / "data" / "people.csv").mkdir()  # a directory where the file should be
    text = HAND_WRITTEN.replace('"people.csv"', '"data/people.csv"')
    problems, _ = validate_sync(text, "backup", load_plugins(), None, config)
    assert [p.key for p in problems] == ["a.path"]
    assert "is a directory" in problems[0].message
    # the same text elsewhere has nothing there: fine
    assert validate_sync(text, "backup", load_plugins())[0] == []
