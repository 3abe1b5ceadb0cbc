"""vCard 3.0 and 4.0 ⇄ fields: the mapping table, and edits that touch nothing unmapped."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from syncd_carddav import vcard

CARD_30 = (
    "BEGIN:VCARD\r\n"
    "VERSION:3.0\r\n"
    "PRODID:-//Apple Inc.//iPhone OS 17.0//EN\r\n"
    "UID:card-30\r\n"
    "N:Lovelace;Ada;Augusta;;\r\n"
    "FN:Ada Lovelace\r\n"
    "ORG:Analytical Engines Ltd;Research\r\n"
    "TITLE:Countess\r\n"
    "EMAIL;TYPE=INTERNET,HOME:ada@home.example\r\n"
    "item1.EMAIL;TYPE=INTERNET,pref:ada@work.example\r\n"
    "item1.X-ABLabel:Work\r\n"
    "TEL;TYPE=CELL:+44 7700 900001\r\n"
    "TEL;TYPE=WORK,VOICE:+44 20 7946 0001\r\n"
    "TEL;TYPE=HOME,FAX:+44 20 7946 0002\r\n"
    "ADR;TYPE=HOME:;;1 Home Row;Bath;;BA1 1AA;UK\r\n"
    "ADR;TYPE=WORK:;;12 St James\\'s Square;London;;SW1Y 4JH;UK\r\n"
    "URL:https://ada.example\r\n"
    "NOTE:First programmer\\, by most accounts\\nand a poet's daughter\r\n"
    "CATEGORIES:friends,vip\r\n"
    "X-PHONETIC-FIRST-NAME:Ay-da\r\n"
    "PHOTO;ENCODING=b;TYPE=JPEG:/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAAMCAgMCAgMDAwMEAwMEBQgFBQQEBQoH\r\n"
    " BwYIDAoMDAsKCwsNDhIQDQ4RDgsLEBYQERMUFRUVDA8XGBYUGBIUFRT/2wBDAQMEBAUEBQkF\r\n"
    "X-SOCIALPROFILE;TYPE=twitter:https://twitter.com/ada\r\n"
    "BDAY:1815-12-10\r\n"
    "END:VCARD\r\n"
)

CARD_40 = (
    "BEGIN:VCARD\n"
    "VERSION:4.0\n"
    "UID:urn:uuid:4fbe8971-0bc3-424c-9c26-36c3e1eff6b1\n"
    "FN:Grace Hopper\n"
    "N:Hopper;Grace;Brewster Murray;Rear Admiral;\n"
    "EMAIL;TYPE=work:grace@navy.example\n"
    "EMAIL;PREF=1;TYPE=home:grace@home.example\n"
    'TEL;VALUE=uri;TYPE="voice,work":tel:+1-202-555-0100\n'
    "TEL;VALUE=uri;TYPE=cell;PREF=1:tel:+1-202-555-0199\n"
    "ADR;TYPE=work:;;1 Navy Yard;Washington;DC;20374;USA\n"
    "GENDER:F\n"
    "KIND:individual\n"
    "END:VCARD\n"
)


def unmapped(text: str) -> list[str]:
    """The raw lines of a card that syncd does not map (kept byte for byte)."""
    mapped = {"N", "FN", "ORG", "TITLE", "URL", "NOTE", "CATEGORIES"}
    return [
        line.raw
        for line in vcard.split_lines(text)
        if line.name not in mapped
        and line.name not in ("EMAIL", "TEL", "ADR")
        and line.name != "X-PHONETIC-FIRST-NAME"
    ]


def test_a_30_card_maps_as_the_table_says() -> None:
    parsed = vcard.parse(CARD_30)
    assert parsed.uid == "card-30"
    assert parsed.data["email"] == "ada@work.example"  # TYPE=pref wins over the first one
    assert parsed.data["given"] == "Ada" and parsed.data["family"] == "Lovelace"
    assert parsed.data["fn"] == "Ada Lovelace"
    assert parsed.data["org"] == "Analytical Engines Ltd"
    assert parsed.data["title"] == "Countess"
    assert parsed.data["cell"] == "+44 7700 900001"
    assert parsed.data["tel"] == "+44 20 7946 0001"  # work/voice, not the fax
    assert parsed.data["adr_street"] == "12 St James's Square"  # the work address first
    assert parsed.data["adr_city"] == "London" and parsed.data["adr_postal_code"] == "SW1Y 4JH"
    assert parsed.data["url"] == "https://ada.example"
    assert parsed.data["note"] == "First programmer, by most accounts\nand a poet's daughter"
    assert parsed.data["categories"] == ("friends", "vip")
    assert parsed.data["custom.phonetic-first-name"] == "Ay-da"
    assert parsed.data["custom.socialprofile"] == "https://twitter.com/ada"


def test_a_40_card_maps_pref_and_tel_uris() -> None:
    parsed = vcard.parse(CARD_40)
    assert parsed.data["email"] == "grace@home.example"  # PREF=1
    assert parsed.data["tel"] == "+1-202-555-0100"  # the tel: URI's number
    assert parsed.data["cell"] == "+1-202-555-0199"
    assert parsed.data["adr_region"] == "DC"
    assert "categories" not in parsed.data


@pytest.mark.parametrize("card", [CARD_30, CARD_40], ids=["3.0", "4.0"])
def test_an_edit_changes_only_mapped_properties_and_keeps_the_rest_byte_for_byte(
    card: str,
) -> None:
    parsed = vcard.parse(card)
    changes = {
        "email": "new@example.com",
        "given": "Augusta",
        "title": "Mathematician",
        "tel": "+44 20 0000 0000",
        "cell": None,
        "adr_city": "Marylebone",
        "categories": ("friends", "family"),
        "note": "Line; with, specials\\",
    }
    edited = vcard.edit(card, parsed.picks, changes)
    again = vcard.parse(edited)
    for key, value in changes.items():
        assert again.data.get(key) == value, key
    assert again.data["family"] == parsed.data["family"]
    assert again.uid == parsed.uid
    # every line syncd does not map is still there, exactly as it was, in the same order
    assert unmapped(edited) == unmapped(card)
    # the other EMAIL is untouched: only the picked one changed
    others = [ln.raw for ln in vcard.split_lines(edited) if ln.name == "EMAIL"]
    assert len(others) == 2 and any("new@example.com" in raw for raw in others)
    newline = "\r\n" if "\r\n" in card else "\n"
    assert all(line.raw.endswith(newline) for line in vcard.split_lines(edited))


def test_an_edit_that_changes_nothing_gives_the_same_bytes() -> None:
    parsed = vcard.parse(CARD_30)
    assert vcard.edit(CARD_30, parsed.picks, {}) == CARD_30


def test_clearing_the_name_keeps_a_formatted_name() -> None:
    parsed = vcard.parse(CARD_30)
    edited = vcard.edit(CARD_30, parsed.picks, {"fn": None})
    assert vcard.parse(edited).data["fn"] == "Ada Lovelace"  # made from N, FN is required


def test_a_new_card_is_a_30_card_with_a_stable_uid() -> None:
    uid = vcard.uid_for("create-key-1")
    assert uid == vcard.uid_for("create-key-1") != vcard.uid_for("create-key-2")
    text = vcard.new_card(uid, {"email": "x@example.com", "given": "Xi", "family": "Ng"})
    parsed = vcard.parse(text)
    assert parsed.uid == uid
    assert parsed.data["fn"] == "Xi Ng" and parsed.data["email"] == "x@example.com"
    assert text.startswith("BEGIN:VCARD\r\nVERSION:3.0\r\n")


@pytest.mark.parametrize(
    "text",
    [
        "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:No end\r\n",
        "this is not a vcard at all",
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n",
    ],
)
def test_a_bad_card_is_a_one_line_error(text: str) -> None:
    with pytest.raises(vcard.VCardError) as caught:
        vcard.parse(text)
    assert "\n" not in str(caught.value) and str(caught.value)


def test_long_lines_are_folded_at_75_octets_without_splitting_a_character() -> None:
    value = "Zoë Ó Súilleabháin " * 12
    text = vcard.new_card("u1", {"note": value})
    for physical in text.split("\r\n"):
        assert len(physical.encode()) <= 75
    assert vcard.parse(text).data["note"] == value.strip()


texts = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\r\n"), max_size=90
).map(str.strip)


@settings(max_examples=150, deadline=None)
@given(
    given_name=texts,
    title=texts,
    note=st.text(
        st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\u2028\u2029\x85")
        | st.sampled_from("\n\r\t"),
        max_size=120,
    ),
    tags=st.lists(texts.filter(lambda t: t and "," not in t), max_size=4, unique=True),
)
def test_any_text_survives_an_edit_and_a_parse(
    given_name: str, title: str, note: str, tags: list[str]
) -> None:
    parsed = vcard.parse(CARD_30)
    data = {"given": given_name, "title": title, "note": note, "categories": tuple(tags)}
    again = vcard.parse(vcard.edit(CARD_30, parsed.picks, data))
    assert again.data.get("given") == (given_name or None)
    assert again.data.get("title") == (title or None)
    expected_note = note.replace("\r\n", "\n").replace("\r", "\n").strip() or None
    assert again.data.get("note") == expected_note
    assert again.data.get("categories", ()) == tuple(tags)
    assert unmapped(vcard.edit(CARD_30, parsed.picks, data)) == unmapped(CARD_30)


def test_the_sandbox_refuses_a_bad_option_in_one_line() -> None:
    from syncd_carddav.sandbox import SandboxError, make_app

    with pytest.raises(SandboxError, match="count= expects a number"):
        make_app(None, {"count": "many"})


field_values = st.none() | texts | st.sampled_from(["", "  ", "tel:+44 1", "a\\,b;c", "x\ny"])


@settings(max_examples=300)
@given(
    data=st.dictionaries(
        st.sampled_from(
            [name for name, _ in vcard.FIELDS if name != "categories"]
            + ["custom.nickname", "custom.Nickname", "custom.x-y", "custom.a;b", "custom.ß"]
        ),
        field_values,
        max_size=12,
    ),
    tags=st.none() | st.lists(texts, max_size=4),
)
def test_a_new_cards_fields_are_what_parsing_it_reads(
    data: dict[str, str | None], tags: list[str] | None
) -> None:
    """The mirror's entry for a created card is made from what was put in it, not parsed
    again: it must be exactly what a parse of the card reads."""
    fields: dict[str, vcard.RawValue] = dict(data)
    if tags is not None:
        fields["categories"] = tuple(tags)
    uid = vcard.uid_for("k")
    text, parsed = vcard.built(uid, fields)
    assert text == vcard.new_card(uid, fields)
    assert parsed == vcard.parse(text)


#: values long enough to be folded, some with multi-byte characters at the fold
new_values = field_values | st.text(
    st.characters(blacklist_categories=("Cs", "Cc")), min_size=60, max_size=160
)


@settings(max_examples=300)
@given(
    data=st.fixed_dictionaries(
        {},
        optional={
            **{name: new_values for name, _ in vcard.FIELDS if name != "categories"},
            "categories": st.lists(new_values.filter(lambda t: t is not None), max_size=3).map(
                tuple
            ),
            "custom.nickname": new_values,
            "custom.x-y": new_values,
        },
    )
)
def test_a_new_card_made_in_one_pass_is_the_skeleton_edited(data: dict[str, Any]) -> None:
    """A create's card is composed in one pass, not by editing a skeleton as an update edits
    a card: every line, its place and its folding must be what the editor makes."""
    uid = vcard.uid_for("k")
    text, parsed = vcard.built(uid, data)
    assert text == vcard.new_card(uid, data)
    assert parsed == vcard.parse(text)


def test_a_new_card_is_not_parsed_again(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(text: str) -> vcard.Parsed:
        raise AssertionError("parsed again")

    monkeypatch.setattr(vcard, "parse", refuse)
    _, parsed = vcard.built("u-1", {"email": "a@x.test", "given": "Ann", "custom.team": "Ops"})
    assert parsed.data["email"] == "a@x.test" and parsed.data["custom.team"] == "Ops"


def test_loading_the_plugin_does_not_import_vobject() -> None:
    """``syncd`` loads the plugin on every start; vobject (and dateutil, pytz) come in with the
    first card read, so a run that reads none never pays for them."""
    code = (
        "import sys, syncd_carddav.plugin, syncd_carddav.connector;"
        "sys.exit('vobject' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    code = (
        "import sys, syncd_carddav.vcard as v; v.parse(v.new_card('u', {}));"
        "sys.exit('vobject' not in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_a_url_with_a_line_break_still_makes_a_readable_card() -> None:
    text = vcard.new_card("u-2", {"url": "https://x.test/\na", "email": "a@x.test"})
    assert vcard.parse(text).data["url"] == "https://x.test/a"


@given(
    st.text(alphabet=st.characters(codec="utf-8"))
    | st.sampled_from(["a,b", "x;y", "\\", "l1\r\nl2"])
)
def test_an_escaped_text_value_reads_back_as_it_was_less_control_characters(value: str) -> None:
    """escape() returns most values as they are (none of what it changes is in them): the fast
    path must give what the full one gives, which _unescape() reads back."""
    lines = value.replace("\r\n", "\n").replace("\r", "\n")
    expected = "".join(c for c in lines if c in "\t\n" or not (c < " " or c == "\x7f"))
    escaped = vcard.escape(value)
    assert "\n" not in escaped and "\r" not in escaped
    # every , ; and \ is escaped: none is left once the escape pairs are taken out
    assert not set(re.sub(r"\\.", "", escaped, flags=re.S)) & set(",;\\")
    assert vcard._unescape(escaped) == expected
