"""The multistatus reader, on an answer with every shape servers send: a card's 200 and 404
propstats, a removed card's own status, a propstat without a status, the request URI's 507
(RFC 6578 3.6: the answer was cut short) and the sync-token."""

from __future__ import annotations

from syncd_carddav.dav import CARD, DAV, parse_multistatus

ANSWER = b"""<?xml version="1.0" encoding="utf-8"?>
<d:multistatus xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:carddav">
  <d:response>
    <d:href>/ann/book/a%20b.vcf</d:href>
    <d:propstat>
      <d:prop><d:getetag>"e1"</d:getetag><c:address-data>BEGIN:VCARD</c:address-data></d:prop>
      <d:status>HTTP/1.1 200 OK</d:status>
    </d:propstat>
    <d:propstat>
      <d:prop><d:displayname/></d:prop>
      <d:status>HTTP/1.1 404 Not Found</d:status>
    </d:propstat>
  </d:response>
  <d:response>
    <d:href> /ann/book/gone.vcf </d:href>
    <d:status>HTTP/1.1 404 Not Found</d:status>
  </d:response>
  <d:response>
    <d:href>/ann/book/nostatus.vcf</d:href>
    <d:propstat><d:prop><d:getetag>"e3"</d:getetag></d:prop></d:propstat>
  </d:response>
  <d:response>
    <d:href>/ann/book/</d:href>
    <d:status>HTTP/1.1 507 Insufficient Storage</d:status>
  </d:response>
  <d:response>
    <d:href>/ann/book/b.vcf</d:href>
    <d:propstat>
      <d:prop><d:getetag>"e4"</d:getetag></d:prop>
      <d:status>HTTP/1.1 201 Created</d:status>
    </d:propstat>
  </d:response>
  <d:sync-token>http://radicale.org/ns/sync/abc</d:sync-token>
</d:multistatus>
"""


def test_every_shape_of_a_multistatus_answer_is_read() -> None:
    status = parse_multistatus(ANSWER, "/ann/book/")
    assert status.sync_token == "http://radicale.org/ns/sync/abc"
    assert status.truncated  # the request URI's 507, which is not a member
    read = [(m.href, m.status, {k: v.text for k, v in m.props.items()}) for m in status.members]
    assert read == [
        (
            "/ann/book/a b.vcf",
            200,
            {f"{{{DAV}}}getetag": '"e1"', f"{{{CARD}}}address-data": "BEGIN:VCARD"},
        ),
        ("/ann/book/gone.vcf", 404, {}),
        # a propstat without a status is not taken as a success
        ("/ann/book/nostatus.vcf", 200, {}),
        ("/ann/book/b.vcf", 201, {f"{{{DAV}}}getetag": '"e4"'}),
    ]


def test_an_answer_without_a_sync_token_has_none() -> None:
    body = ANSWER.replace(b"<d:sync-token>http://radicale.org/ns/sync/abc</d:sync-token>", b"")
    assert parse_multistatus(body, "/ann/book/").sync_token is None
