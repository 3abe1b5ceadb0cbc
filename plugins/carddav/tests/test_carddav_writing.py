"""Writing against real servers (both Radicale and Xandikos): creates with ``If-None-Match: *``,
updates and deletes with ``If-Match``, a phone's edit between read and write, and updates that
change only what syncd maps."""

from __future__ import annotations

from syncd_carddav import vcard
from syncd_carddav.servers import DavServer, sample_card
from syncd_carddav.testing import Book, Connect, listing

from syncd.connector import RecordWrite

PHONE_CARD = (
    "BEGIN:VCARD\r\n"
    "VERSION:3.0\r\n"
    "PRODID:-//Apple Inc.//iPhone OS 17.0//EN\r\n"
    "UID:phone-card-1\r\n"
    "N:Okafor;Chidi;;;\r\n"
    "FN:Chidi Okafor\r\n"
    "EMAIL;TYPE=INTERNET,HOME:chidi@home.example\r\n"
    "item1.EMAIL;TYPE=INTERNET,pref:chidi@work.example\r\n"
    "item1.X-ABLabel:_$!<Work>!$_\r\n"
    "TEL;TYPE=CELL:+44 7700 900111\r\n"
    "TEL;TYPE=HOME,FAX:+44 20 7946 0999\r\n"
    "X-PHONETIC-LAST-NAME:Oh-kah-for\r\n"
    "PHOTO;ENCODING=b;TYPE=JPEG:/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAAMCAgMCAgMDAwMEAwMEBQgFBQQEBQoH\r\n"
    " BwYIDAoMDAsKCwsNDhIQDQ4RDgsLEBYQERMUFRUVDA8XGBYUGBIUFRT/2wBDAQMEBAUEBQkF\r\n"
    'X-UNKNOWN-THING;X-PARAM="a:b":opaque\\;value\r\n'
    "END:VCARD\r\n"
)
MAPPED = {"N", "FN", "EMAIL", "TEL", "TITLE", "ORG", "NOTE", "CATEGORIES", "ADR", "URL"}


def unmapped_lines(text: str) -> list[str]:
    return [line.unfolded for line in vcard.split_lines(text) if line.name not in MAPPED]


async def test_a_create_gets_a_uid_and_a_file_name_the_server_accepts(
    server: DavServer, book: Book, connect: Connect
) -> None:
    connector = await connect(server, book.url)
    await listing(connector)
    data = {"email": "new@example.com", "given": "Nia", "family": "Obi", "tel": "+44 20 1"}
    [result] = await connector.create([RecordWrite("create-key-1", data)])
    assert result.ok and result.id is not None and result.id.endswith(".vcf")
    assert result.stored == {"fn": "Nia Obi"}  # FN is required: made from the name
    status, body, _ = await book.get(result.id)
    assert status == 200
    parsed = vcard.parse(body)
    assert parsed.uid == vcard.uid_for("create-key-1")
    assert parsed.data["email"] == "new@example.com" and parsed.data["tel"] == "+44 20 1"
    # the same create again (a retry, or a rerun after a kill): the card it made, no second
    [again] = await connector.create([RecordWrite("create-key-1", data)])
    assert again.ok and again.id == result.id
    assert await book.names() == [result.id]


async def test_an_update_changes_only_the_mapped_properties(
    server: DavServer, book: Book, connect: Connect
) -> None:
    await book.put("chidi.vcf", PHONE_CARD)
    _, stored, _ = await book.get("chidi.vcf")  # as the server keeps it (Radicale reorders)
    for line in ("X-UNKNOWN-THING", "PHOTO", "X-PHONETIC-LAST-NAME", "item1.X-ABLabel"):
        assert line.lower() in stored.lower()
    connector = await connect(server, book.url)
    records = await listing(connector)
    assert records["chidi.vcf"].data["email"] == "chidi@work.example"
    [result] = await connector.update(
        [
            RecordWrite(
                "u1",
                {"title": "Professor", "email": "c.okafor@work.example", "cell": "+44 7700 1"},
                "chidi.vcf",
            )
        ]
    )
    assert result.ok, result.error
    _, body, etag = await book.get("chidi.vcf")
    parsed = vcard.parse(body)
    assert parsed.data["title"] == "Professor"
    assert parsed.data["email"] == "c.okafor@work.example" and parsed.data["cell"] == "+44 7700 1"
    # the home EMAIL, the fax, the photo, X- and unknown properties are all still there
    assert unmapped_lines(body) == unmapped_lines(stored)
    emails = [ln.unfolded for ln in vcard.split_lines(body) if ln.name == "EMAIL"]
    assert "EMAIL;TYPE=INTERNET,HOME:chidi@home.example" in emails
    assert any("HOME,FAX" in ln.unfolded for ln in vcard.split_lines(body) if ln.name == "TEL")
    if etag:
        assert result.version == etag
    # the next listing knows the card without fetching it
    fetched = connector.stats["fetched"]
    again = await listing(connector)
    assert again["chidi.vcf"].data["title"] == "Professor"
    assert connector.stats["fetched"] == fetched


async def test_a_phone_edit_between_read_and_write_is_never_overwritten(
    server: DavServer, book: Book, connect: Connect
) -> None:
    await book.put("c.vcf", sample_card("uc", given="Cleo", family="Lund", email="cleo@x.example"))
    connector = await connect(server, book.url)
    await listing(connector)
    # the phone edits the card after syncd read it
    _, _, etag = await book.get("c.vcf")
    await book.put("c.vcf", sample_card("uc", given="Cleo", family="Lund-Phone"), etag or None)
    [result] = await connector.update([RecordWrite("u1", {"title": "CTO"}, "c.vcf")])
    assert not result.ok and result.error is not None
    assert "412" in result.error and "next run" in result.error
    _, body, _ = await book.get("c.vcf")
    assert "Lund-Phone" in body and "CTO" not in body  # the phone's edit stands
    # the next listing reads the phone's version
    records = await listing(connector)
    assert records["c.vcf"].data["family"] == "Lund-Phone"
    [retry] = await connector.update([RecordWrite("u2", {"title": "CTO"}, "c.vcf")])
    assert retry.ok, retry.error
    _, body, _ = await book.get("c.vcf")
    assert "Lund-Phone" in body and "CTO" in body


async def test_a_delete_goes_with_if_match_and_a_changed_card_is_kept(
    server: DavServer, book: Book, connect: Connect
) -> None:
    await book.put("a.vcf", sample_card("ua", given="A"))
    await book.put("b.vcf", sample_card("ub", given="B"))
    connector = await connect(server, book.url)
    await listing(connector)
    _, _, etag = await book.get("b.vcf")
    await book.put("b.vcf", sample_card("ub", given="B edited"), etag or None)
    results = await connector.archive(["a.vcf", "b.vcf"])
    assert results[0].ok and not results[1].ok
    assert "412" in (results[1].error or "")
    assert await book.names() == ["b.vcf"]
    assert set(await listing(connector)) == {"b.vcf"}
