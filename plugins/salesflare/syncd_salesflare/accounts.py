"""Company ↔ account: finding (and, when allowed, creating) the Salesflare account by name.

A contact's company lives in Salesflare as a link to an *account*; a write takes the account's id.
Names are matched after folding case and white space; when several accounts carry the same name
the lowest id (the oldest) wins, so the choice is the same on every run. Names found are cached
for the run, and every account seen while listing contacts primes the cache for free.

``GET /accounts?name=`` is documented without saying whether it matches exactly or by part
(vendors.md has no fact on it), so the answer is filtered here for an exact match.
``POST /accounts`` with ``{"name": …}`` answering ``{"id": …}`` mirrors how contacts are created
(inferred; the spec types the answer as a string).
"""

from __future__ import annotations

import asyncio
import unicodedata
from collections.abc import Mapping
from typing import Any

from syncd_salesflare.client import SalesflareHttp, parse_error


class AccountUnavailable(Exception):
    """The contact's company cannot be linked; ``str(exc)`` is the record's reason."""


def account_key(name: str) -> str:
    return " ".join(unicodedata.normalize("NFC", name).casefold().split())


class AccountDirectory:
    def __init__(self, http: SalesflareHttp, *, create_missing: bool) -> None:
        self.http = http
        self.create_missing = create_missing
        self._ids: dict[str, int] = {}
        #: account_key() of names seen on listed contacts
        self._keys: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.created: list[str] = []

    def clear(self) -> None:
        self._ids.clear()
        self._locks.clear()
        self.created.clear()

    def remember(self, account: Any) -> None:
        """Prime the cache with an account seen on a contact (``{id, name, …}``). Called for
        every listed contact, which mostly share a few accounts: a name's key is computed once."""
        if account.__class__ is not dict and not isinstance(account, Mapping):
            return
        name, account_id = account.get("name"), account.get("id")
        if isinstance(name, str) and isinstance(account_id, int) and name.strip():
            key = self._keys.get(name)
            if key is None:
                if len(self._keys) >= 10_000:
                    self._keys.clear()
                key = self._keys[name] = account_key(name)
            known = self._ids.get(key)
            self._ids[key] = account_id if known is None else min(known, account_id)

    async def resolve(self, name: str) -> int:
        name = " ".join(name.split())
        key = account_key(name)
        if key in self._ids:
            return self._ids[key]
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # two writes naming the same new company create it once
            if key in self._ids:
                return self._ids[key]
            found = await self._find(name, key)
            if found is None:
                if not self.create_missing:
                    raise AccountUnavailable(
                        f"no Salesflare account is named {name!r} and create_accounts is off"
                    )
                found = await self._create(name)
                self.created.append(name)
            self._ids[key] = found
            return found

    async def _find(self, name: str, key: str) -> int | None:
        response = await self.http.request(
            "GET", "/accounts", params=[("name", name), ("limit", "100")]
        )
        if response.status >= 400:
            raise AccountUnavailable(f"looking up account {name!r}: {parse_error(response).reason}")
        body = response.json()
        matches = [
            item["id"]
            for item in (body if isinstance(body, list) else [])
            if isinstance(item, dict)
            and isinstance(item.get("id"), int)
            and isinstance(item.get("name"), str)
            and account_key(item["name"]) == key
        ]
        return min(matches) if matches else None

    async def _create(self, name: str) -> int:
        response = await self.http.request("POST", "/accounts", json_body={"name": name})
        if response.status >= 400:
            raise AccountUnavailable(f"creating account {name!r}: {parse_error(response).reason}")
        body = response.json()
        if isinstance(body, list) and body:
            body = body[0]
        if isinstance(body, dict) and isinstance(body.get("id"), int):
            return int(body["id"])
        raise AccountUnavailable(f"creating account {name!r}: Salesflare returned no id")
