"""``syncd sandbox carddav``: a real Radicale on 127.0.0.1, seeded with sample contacts.

The sandbox is no emulator: syncd's sandbox command serves an aiohttp application, so this one
starts Radicale (in a temporary folder, removed when it stops) on a port of its own and proxies
every request to it. The account is ``demo`` / ``demo-sandbox-pass``; the address book is
``/demo/contacts/`` ("Contacts").
"""

from __future__ import annotations

import importlib.util
import random
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import click
from aiohttp import web

from syncd.sample_people import shared_at
from syncd_carddav.proxy import make_proxy
from syncd_carddav.servers import Radicale

USER = "demo"
PASSWORD = "demo-sandbox-pass"
BOOK = "contacts"
CITIES = ("Leeds", "Bristol", "Glasgow", "Cardiff", "York", "Belfast", "Norwich", "Bath")
SERVER_KEY = web.AppKey("carddav_radicale", Radicale)


def sample_cards(seed: int, count: int = 30) -> list[tuple[str, str]]:
    """``count`` cards (file name, vCard): every third one a person the other sandboxes seeded
    with ``seed`` hold too (:mod:`syncd.sample_people`), some with a photo and an X- property
    that syncd does not map and must keep."""
    rng = random.Random(f"carddav-sandbox:{seed}")
    cards = []
    for n in range(count):
        person = shared_at(seed, n)
        if person is not None:
            first, last, email, org = (
                person.first_name,
                person.last_name,
                person.email,
                person.company,
            )
        else:
            first = rng.choice(("Ada", "Ben", "Cleo", "Dev", "Eve", "Finn", "Gia", "Hal"))
            last = rng.choice(("Marsh", "Okafor", "Lund", "Reyes", "Szabo", "Tran", "Vos"))
            email, org = f"{first}.{last}{n}@phone.example".lower(), ""
        uid = f"sandbox-{seed}-{n:03d}"
        lines = [
            "BEGIN:VCARD",
            "VERSION:3.0",
            f"UID:{uid}",
            f"FN:{first} {last}",
            f"N:{last};{first};;;",
            f"EMAIL;TYPE=INTERNET,HOME:{email}",
            f"TEL;TYPE=CELL:+44 7700 9{rng.randrange(10**5):05d}",
            f"ADR;TYPE=HOME:;;{rng.randrange(1, 200)} High Street;{rng.choice(CITIES)};;;UK",
        ]
        if org:
            lines.append(f"ORG:{org}")
        if n % 5 == 0:
            lines.append("X-PHONETIC-FIRST-NAME:" + first)
        if n % 7 == 0:
            lines.append("NICKNAME:" + first[:3])
        lines.append("END:VCARD")
        cards.append((f"{uid}.vcf", "\r\n".join(lines) + "\r\n"))
    return cards


class SandboxError(click.ClickException):
    """Why the sandbox cannot start (exit status 2, one line, no traceback)."""

    exit_code = 2


def make_app(seed: int | None, options: dict[str, Any]) -> web.Application:
    if importlib.util.find_spec("radicale") is None:
        raise SandboxError(
            "the carddav sandbox runs Radicale, which is not installed: "
            "pip install 'syncd-carddav[sandbox]'"
        )
    try:
        count = int(options.get("count", 30))
    except ValueError:
        raise SandboxError(f"--option count= expects a number, got {options['count']!r}") from None
    holder: dict[str, Radicale] = {}
    app = make_proxy(lambda: holder["server"].url)

    async def radicale(app: web.Application) -> AsyncIterator[None]:
        folder = Path(tempfile.mkdtemp(prefix="syncd-carddav-sandbox-"))
        server = Radicale(folder, user=USER, password=PASSWORD)
        try:
            await server.start()
            holder["server"] = server
            book = await server.make_addressbook(BOOK, "Contacts")
            if seed is not None:
                for name, body in sample_cards(seed, count):
                    await server.put_card(book, name, body)
            yield
        finally:
            await server.stop()
            shutil.rmtree(folder, ignore_errors=True)

    app.cleanup_ctx.append(radicale)
    return app
