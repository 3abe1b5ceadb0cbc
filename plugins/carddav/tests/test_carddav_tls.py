"""TLS against a real Radicale serving HTTPS with a certificate of a CA made by the test
(``trustme``): an untrusted certificate is refused with a message naming the setting, the
``ca_bundle`` path makes it trusted, and ``verify_tls = false`` connects and says so."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from syncd_carddav.servers import DavServer, Radicale, Running, sample_card
from syncd_carddav.testing import Book, Connect, MakeBook, listing

from syncd.connector import ConnectorConfigError
from syncd.testing.runner import Syncd


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(tls_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "home-ca.pem"
    tls_ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="session")
def tls_radicale(
    tls_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DavServer]:
    """Radicale on https://127.0.0.1, its certificate signed by ``tls_ca`` (trusted by no
    system store)."""
    folder = tmp_path_factory.mktemp("radicale-tls")
    issued = tls_ca.issue_cert("127.0.0.1")
    chain, key = folder / "server.pem", folder / "server.key"
    for blob in issued.cert_chain_pems:
        blob.write_to_path(str(chain), append=True)
    issued.private_key_pem.write_to_path(str(key))
    trusted = ssl.create_default_context()
    tls_ca.configure_trust(trusted)
    with Running(Radicale(folder, tls=(chain, key), client_ssl=trusted)) as server:
        yield server


@pytest.fixture
async def tls_book(tls_radicale: DavServer, new_book: MakeBook) -> Book:
    book = await new_book(tls_radicale)
    await book.put("ann.vcf", sample_card("ann", given="Ann", family="Lee", email="ann@x.test"))
    return book


async def test_an_untrusted_certificate_is_refused_naming_the_setting(
    tls_radicale: DavServer, tls_book: Book, connect: Connect
) -> None:
    assert tls_book.url.startswith("https://")
    connector = await connect(tls_radicale, tls_book.url)
    with pytest.raises(ConnectorConfigError) as caught:
        await connector.check()
    message = str(caught.value)
    assert caught.value.key == "ca_bundle"
    assert "TLS certificate is not trusted" in message and "ca_bundle" in message
    assert "127.0.0.1" in message and "\n" not in message
    # refused at once: a certificate is not a dropped connection worth retrying
    assert connector.http is not None and connector.http.calls == 1


async def test_the_ca_bundle_makes_the_certificate_trusted(
    tls_radicale: DavServer, tls_book: Book, connect: Connect, ca_file: Path
) -> None:
    connector = await connect(tls_radicale, tls_book.url, ca_bundle=str(ca_file))
    answer = await connector.check()
    assert "WebDAV sync" in answer and "WARNING" not in answer
    records = await listing(connector)
    assert [r.data.get("email") for r in records.values()] == ["ann@x.test"]


async def test_a_ca_bundle_that_is_not_pem_is_a_setting_error(
    tls_radicale: DavServer, tls_book: Book, connect: Connect, tmp_path: Path
) -> None:
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("not a certificate\n")
    with pytest.raises(ConnectorConfigError) as caught:
        await connect(tls_radicale, tls_book.url, ca_bundle=str(bogus))
    assert caught.value.key == "ca_bundle" and str(bogus) in str(caught.value)


async def test_verify_tls_false_connects_and_warns(
    tls_radicale: DavServer,
    tls_book: Book,
    connect: Connect,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="syncd.carddav"):
        connector = await connect(tls_radicale, tls_book.url, verify_tls=False)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("verify_tls = false" in w and "not checked" in w for w in warned), warned
    assert tls_radicale.password not in " ".join(warned)
    answer = await connector.check()
    assert "TLS certificate not checked (verify_tls = false)" in answer
    assert len(await listing(connector)) == 1


async def test_check_connect_says_which_setting_trusts_the_certificate(
    tls_radicale: DavServer, tls_book: Book, tmp_path: Path, ca_file: Path
) -> None:
    """The real ``syncd check --connect``: one line naming ca_bundle, no traceback; with the
    bundle set, the same config connects."""
    syncd = Syncd(
        tmp_path, plugins=["syncd-carddav"], env={"CARDDAV_PASSWORD": tls_radicale.password}
    )
    (tmp_path / "crm.csv").write_text("email\n")
    sync = f"""
        [a]
        connector = "carddav"
        url = "{tls_book.url}"
        username = "{tls_radicale.user}"
        password = "${{env:CARDDAV_PASSWORD}}"
        {{extra}}
        [b]
        connector = "csv"
        path = "{tmp_path / "crm.csv"}"
        """
    syncd.write_sync("phone", sync.replace("{extra}", ""))
    refused = await syncd.run("check", "--connect")
    assert refused.status != 0
    line = next(ln for ln in refused.stdout.splitlines() if "phone a (carddav)" in ln)
    assert "FAILED" in line and "not trusted" in line and "ca_bundle" in line
    assert "Traceback" not in refused.stdout + refused.stderr
    assert tls_radicale.password not in refused.stdout + refused.stderr

    syncd.write_sync("phone", sync.replace("{extra}", f'ca_bundle = "{ca_file}"'))
    trusted = await syncd.run("check", "--connect")
    assert trusted.status == 0, str(trusted)
    line = next(ln for ln in trusted.stdout.splitlines() if "phone a (carddav)" in ln)
    assert "WebDAV sync" in line
