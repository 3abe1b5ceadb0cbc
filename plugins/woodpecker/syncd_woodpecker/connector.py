"""The ``woodpecker`` connector: Woodpecker.co prospects (the global prospect list, API v1).

* Reading: ``GET /rest/v1/prospects`` page by page, sorted by id; incremental through
  ``diff=updated>…``; lookups through ``search=email=…``.
* Writing: ``POST /rest/v1/add_prospects_list`` with ``"update": true`` for creates *and* updates
  (an upsert keyed by email: without the flag, existing prospects are silently left unchanged).
* Deleting: ``DELETE /rest/v1/prospects?id=…`` (hard delete), only when the engine calls
  :meth:`archive`, which it does only when the sync's deletion policy says so.
* Every request to one API key goes through one budget with a concurrency of one, shared by all
  syncs using that key: Woodpecker processes one request at a time and drops the overflow.

Facts marked secondary or unknown in vendors.md §3 are handled defensively; each place says which
behaviour is emulated by the sandbox and which alternatives the code also copes with.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from datetime import datetime
from typing import Any

import aiohttp

from syncd.connector import (
    Capabilities,
    Connector,
    ConnectorConfigError,
    ConnectorContext,
    ConnectorError,
    HttpClient,
    HttpResponse,
    RateBudget,
    RecordWrite,
    RemoteRecord,
    Setting,
    WriteResult,
    http_url,
    shared_budget,
)
from syncd.paging import json_body, numbered_pages
from syncd_woodpecker.errors import (
    E_RECORD_NOT_FOUND,
    E_WRONG_PARAM,
    RECORD_CODES,
    WoodpeckerError,
    classify,
    error_in,
    error_of,
    too_many_requests,
)
from syncd_woodpecker.fields import (
    FIELDS,
    STATUSES,
    WRITABLE,
    cursor_for,
    parse_updated,
    payload_value,
    prospect_data,
)

DEFAULT_BASE_URL = "https://api.woodpecker.co/rest"
PROSPECTS = "/v1/prospects"
ADD_PROSPECTS_LIST = "/v1/add_prospects_list"

#: ``per_page`` limit [vendors.md §3.2, primary]; older clients enforced 500 (secondary).
MAX_PER_PAGE = 1000
LEGACY_MAX_PER_PAGE = 500
#: prospects per ``add_prospects_list`` request [vendors.md §3.2, primary]
MAX_BATCH = 20_000
DEFAULT_BATCH = 5_000
#: The DELETE URL is limited to about 4,100 characters (~360 ids) [vendors.md §3.2]; stay below.
MAX_ID_QUERY_CHARS = 3_500
#: listing passes at most (the first, plus re-reads when the list changed while being paged)
MAX_LISTING_PASSES = 3
#: Up to this many emails are looked up one ``search`` each; more are found in one full listing.
SEARCH_LOOKUP_LIMIT = 10


def _budget_key(base_url: str, api_key: str) -> str:
    # the key itself never leaves the connector: budgets are named after a digest of it
    digest = hashlib.sha256(api_key.encode()).hexdigest()[:16]
    return f"woodpecker:{base_url.rstrip('/')}:{digest}"


class WoodpeckerConnector(Connector):
    name = "woodpecker"
    title = "Woodpecker.co prospects"
    settings = (
        Setting(
            "api_key",
            "Woodpecker API key (Marketplace → Integrations → API keys), sent as x-api-key",
            required=True,
            secret=True,
        ),
        Setting(
            "base_url",
            "API root, ending in /rest",
            default=DEFAULT_BASE_URL,
            validator=http_url,
            public=True,
        ),
        Setting(
            "batch_size",
            f"prospects per add_prospects_list request (1-{MAX_BATCH})",
            type=int,
            default=DEFAULT_BATCH,
            minimum=1,
            maximum=MAX_BATCH,
        ),
        Setting(
            "per_page",
            f"prospects per listed page (1-{MAX_PER_PAGE})",
            type=int,
            default=MAX_PER_PAGE,
            minimum=1,
            maximum=MAX_PER_PAGE,
        ),
        Setting(
            "file_name",
            "the import name Woodpecker shows for prospects added by syncd",
            default="syncd",
            public=True,
        ),
    )
    capabilities = Capabilities(
        read=True,
        write=True,
        incremental=True,
        lookup_by_email=True,
        archive="delete",
        create_batch_size=DEFAULT_BATCH,
        update_batch_size=DEFAULT_BATCH,
        idempotency_keys=False,
        custom_fields=False,
    )
    fields = FIELDS

    def __init__(self, settings: Mapping[str, Any], context: ConnectorContext) -> None:
        super().__init__(settings, context)
        api_key = str(self.config.get("api_key") or "").strip()
        if not api_key:
            raise ConnectorConfigError("api_key is required", key="api_key")
        self._api_key = api_key
        self.base_url = str(self.config.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise ConnectorConfigError("base_url must start with http:// or https://", "base_url")
        self.batch_size = _bounded(self.config, "batch_size", DEFAULT_BATCH, MAX_BATCH)
        self.per_page = _bounded(self.config, "per_page", MAX_PER_PAGE, MAX_PER_PAGE)
        self.file_name = str(self.config.get("file_name") or "syncd")
        self.capabilities = dataclasses.replace(
            type(self).capabilities,
            create_batch_size=self.batch_size,
            update_batch_size=self.batch_size,
        )
        self.client: HttpClient | None = None
        #: prospect id → email, learnt from listings and writes: updates are sent by email
        self._emails: dict[str, str] = {}
        #: None until tried; False once the API refused the ``diff`` filter
        self.diff_supported: bool | None = None

    def __repr__(self) -> str:
        return f"<WoodpeckerConnector {self.base_url} sync={self.context.sync!r}>"

    # --- life cycle -----------------------------------------------------------------------

    async def open(self) -> None:
        budget = shared_budget(
            _budget_key(self.base_url, self._api_key),
            # No published request rate; the limit is concurrency: one request at a time
            # [vendors.md §3.4]. The rate only guards against a runaway loop.
            lambda: RateBudget(calls=50, period=1.0, concurrency=1),
        )
        api_key = self._api_key

        async def auth() -> Mapping[str, str]:
            return {"x-api-key": api_key}

        self.client = HttpClient(
            base_url=self.base_url,
            budget=budget,
            headers={"Accept": "application/json"},
            auth=auth,
            classify=classify,
            transient=too_many_requests,
            # a 20,000-prospect upsert can take the server a while
            timeout=aiohttp.ClientTimeout(total=300, connect=10, sock_read=240),
        )

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()

    @property
    def http(self) -> HttpClient:
        if self.client is None:
            raise ConnectorError("the woodpecker connector was used before open()")
        return self.client

    async def check(self) -> str:
        response = await self.http.request("GET", PROSPECTS, params={"page": "1", "per_page": "1"})
        if response.status == 204:
            return f"Woodpecker at {self.base_url}: API key accepted, no prospects yet"
        self._expect_ok(response, "listing prospects")
        total = _total_count(response)
        count = f"{total} prospects" if total is not None else "prospects readable"
        return f"Woodpecker at {self.base_url}: API key accepted, {count}"

    # --- reading --------------------------------------------------------------------------

    def make_cursor(self, watermark: datetime) -> str:
        return cursor_for(watermark)

    async def list_records(self, cursor: str | None) -> AsyncIterator[list[RemoteRecord]]:
        diff = None
        if cursor and self.diff_supported is not False and parse_updated(cursor) is not None:
            diff = f"updated>{cursor}"
        async for page in self._pages(diff):
            yield page

    async def _pages(self, diff: str | None) -> AsyncIterator[list[RemoteRecord]]:
        """All prospects (those matching ``diff``), each yielded once, in id order.

        Paging is by page number, so a prospect deleted while we list shifts the rest back by
        one and the first prospect of the next page would be skipped. ``X-Total-Count`` tells:
        when it changes between pages, or fewer distinct prospects were seen than it says exist,
        another pass yields those missed, so that a full listing does not lose a live prospect
        (which the engine could take for a deletion). An insertion and a deletion landing
        between the same two page requests leave the count as it was and go unnoticed; the
        next listing sees the prospect again.
        """
        seen: set[str] = set()
        total: int | None = None
        for _pass in range(MAX_LISTING_PASSES):
            totals: set[int] = set()
            first = await self._first_page(diff)
            diff, per_page = first.diff, self.per_page
            if first.rows and len(first.rows) < min(per_page, first.total or 0):
                # The API served fewer rows than asked although more exist: it caps per_page
                # lower than we thought. Page on with its own page size.
                per_page = len(first.rows)
            # Woodpecker processes one request at a time (vendors.md §3.4), and so does the
            # budget: the next page is fetched while this one is mapped, never two at once.
            pages = numbered_pages(
                functools.partial(self._page, per_page=per_page, diff=diff),
                functools.partial(_last_page, per_page=per_page, seen=seen),
                window=1,
                fetched=first,
            )
            async with aclosing(pages):
                async for _number, page in pages:
                    if not page.rows:
                        break
                    total = page.total
                    if total is not None:
                        totals.add(total)
                    records = [self._record(row) for row in page.rows if isinstance(row, dict)]
                    fresh = [r for r in records if r.id not in seen]
                    seen.update(r.id for r in fresh)
                    if fresh:
                        yield fresh
                    if len(page.rows) < per_page:
                        break
                    if total is not None and len(seen) >= total:
                        break  # the last page was full: spare the call that would answer 204
            if len(totals) <= 1 and (total is None or len(seen) >= total):
                return

    async def _first_page(self, diff: str | None) -> _Page:
        """Page 1, finding out on the way whether the API takes ``diff`` and our per_page."""
        while True:
            params = {"page": "1", "per_page": str(self.per_page), "sort": "+id"}
            if diff is not None:
                params["diff"] = diff
            response = await self.http.request("GET", PROSPECTS, params=params)
            if response.status == 400:
                error = error_of(response)
                if error is not None and error.code == E_WRONG_PARAM:
                    if diff is not None:
                        # The diff syntax is a secondary fact [vendors.md §3.2]: when the API
                        # refuses it, list everything (a superset is always safe).
                        self.diff_supported = False
                        diff = None
                        continue
                    if self.per_page > LEGACY_MAX_PER_PAGE:
                        # older limit of 500 per page (secondary) [vendors.md §3.2]
                        self.per_page = LEGACY_MAX_PER_PAGE
                        continue
            return self._answer(response, diff)

    async def _page(self, number: int, per_page: int, diff: str | None) -> _Page:
        params = {"page": str(number), "per_page": str(per_page), "sort": "+id"}
        if diff is not None:
            params["diff"] = diff
        return self._answer(await self.http.request("GET", PROSPECTS, params=params), diff)

    def _answer(self, response: HttpResponse, diff: str | None) -> _Page:
        if response.status == 204:  # an empty page [vendors.md §3.4]
            return _Page([], None, diff)
        self._expect_ok(response, "listing prospects")
        if diff is not None:
            self.diff_supported = True
        rows = json_body(response.body)
        if not isinstance(rows, list) or not rows:
            return _Page([], None, diff)
        return _Page(rows, _total_count(response), diff)

    def _record(self, row: Mapping[str, Any]) -> RemoteRecord:
        record_id = str(row.get("id", ""))
        data = prospect_data(row)
        email = data.get("email")
        if record_id and isinstance(email, str):
            self._emails[record_id] = email
        if not record_id:
            return RemoteRecord(id="", data=data, error="Woodpecker listed a prospect without id")
        return RemoteRecord(record_id, data, updated_at=parse_updated(row.get("updated")))

    async def lookup_by_email(self, emails: Sequence[str]) -> list[RemoteRecord]:
        wanted = {e.strip().lower() for e in emails if e and e.strip()}
        if not wanted:
            return []
        found: dict[str, RemoteRecord] = {}
        if len(wanted) > SEARCH_LOOKUP_LIMIT:
            # one search per email is one request each; past a handful, a full listing
            # (1,000 prospects a page) is cheaper
            async for page in self._pages(None):
                for record in page:
                    if _email_key(record) in wanted:
                        found[record.id] = record
            return list(found.values())
        for email in sorted(wanted):
            for record in await self._search_email(email):
                if _email_key(record) == email:
                    found[record.id] = record
        return list(found.values())

    async def _search_email(self, email: str) -> list[RemoteRecord]:
        # ``search`` matches exactly, or as a regex for ``.*x.*`` values [vendors.md §3.2]; the
        # result is filtered here again, so a partial match can never be taken for the prospect
        response = await self.http.request(
            "GET", PROSPECTS, params={"search": f"email={email}", "per_page": str(self.per_page)}
        )
        if response.status == 204:
            return []
        self._expect_ok(response, "searching prospects by email")
        rows = response.json()
        return (
            [self._record(r) for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []
        )

    async def _fetch_by_ids(self, ids: Sequence[str]) -> dict[str, RemoteRecord]:
        """Prospects by id, through the ``id`` filter (a comma-separated list)."""
        found: dict[str, RemoteRecord] = {}
        for chunk in _id_chunks([i for i in ids if i.isdigit()]):
            response = await self.http.request(
                "GET",
                PROSPECTS,
                params={"id": ",".join(chunk), "per_page": str(MAX_PER_PAGE)},
            )
            if response.status == 204:
                continue
            self._expect_ok(response, "reading prospects by id")
            rows = response.json()
            for row in rows if isinstance(rows, list) else []:
                if isinstance(row, dict):
                    record = self._record(row)
                    found[record.id] = record
        return found

    # --- writing --------------------------------------------------------------------------

    async def create(self, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        results: dict[str, WriteResult] = {}
        ready: list[tuple[RecordWrite, dict[str, str]]] = []
        for write in writes:
            prospect, problem = self._payload(write.data)
            email = prospect.get("email", "")
            if problem is None and not email.strip():
                problem = "Woodpecker needs an email for every prospect"
            if problem is not None:
                results[write.key] = WriteResult(write.key, None, problem)
            else:
                ready.append((write, prospect))
        for write, outcome in await self._upsert(ready):
            if isinstance(outcome, WoodpeckerError):
                results[write.key] = WriteResult(write.key, None, str(outcome))
            else:
                results[write.key] = WriteResult(write.key, outcome)
        return [results[w.key] for w in writes]

    async def update(self, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        results: dict[str, WriteResult] = {}
        unknown = [w.id for w in writes if w.id and w.id not in self._emails]
        if unknown:
            await self._fetch_by_ids(unknown)
        ready: list[tuple[RecordWrite, dict[str, str]]] = []
        for write in writes:
            current = self._emails.get(write.id or "")
            prospect, problem = self._payload(write.data)
            if problem is None and current is None:
                problem = f"no prospect with id {write.id} in Woodpecker (deleted?)"
            if problem is None and current is not None:
                new_email = prospect.get("email")
                if new_email is not None and new_email.strip().lower() != current.lower():
                    # add_prospects_list matches prospects by email: sending the new address
                    # would add a second prospect rather than change this one's.
                    problem = (
                        f"Woodpecker cannot change a prospect's email through its API "
                        f"(from {current} to {new_email}); change it in Woodpecker"
                    )
                prospect["email"] = current
            if problem is not None:
                results[write.key] = WriteResult(write.key, write.id, problem)
            elif len(prospect) == 1:
                results[write.key] = WriteResult(write.key, write.id)  # nothing to change
            else:
                ready.append((write, prospect))
        for write, outcome in await self._upsert(ready):
            if isinstance(outcome, WoodpeckerError):
                results[write.key] = WriteResult(write.key, write.id, str(outcome))
            elif outcome != write.id:
                results[write.key] = WriteResult(
                    write.key,
                    write.id,
                    f"Woodpecker applied the update to prospect {outcome}, not {write.id}: "
                    "its email changed in Woodpecker since it was listed",
                )
            else:
                results[write.key] = WriteResult(write.key, write.id)
        return [results[w.key] for w in writes]

    def _payload(self, data: Mapping[str, Any]) -> tuple[dict[str, str], str | None]:
        """A write's fields → one prospect object for ``add_prospects_list``."""
        prospect: dict[str, str] = {}
        for name, value in data.items():
            if name not in WRITABLE:
                return {}, f"{name} is not a writable Woodpecker prospect field"
            prospect[name] = payload_value(name, value)
        status = prospect.get("status")
        if status is not None:
            # status is only written through a custom mapping; refuse values the API would not
            # know rather than let a typo turn into a status change
            status = status.strip().upper()
            if status not in STATUSES:
                return {}, f"{status or 'an empty status'} is not a Woodpecker prospect status"
            prospect["status"] = status
        return prospect, None

    async def _upsert(
        self, items: Sequence[tuple[RecordWrite, dict[str, str]]]
    ) -> list[tuple[RecordWrite, str | WoodpeckerError]]:
        """Send prospects with ``"update": true``; each write's prospect id, or its error."""
        outcomes: list[tuple[RecordWrite, str | WoodpeckerError]] = []
        for start in range(0, len(items), self.batch_size):
            outcomes.extend(await self._upsert_batch(items[start : start + self.batch_size]))
        return outcomes

    async def _upsert_batch(
        self, items: Sequence[tuple[RecordWrite, dict[str, str]]]
    ) -> list[tuple[RecordWrite, str | WoodpeckerError]]:
        if not items:
            return []
        body = {
            "file_name": self.file_name,
            # Always: without it Woodpecker silently leaves existing prospects unchanged
            # [vendors.md §3.6], and a create whose first attempt did land (a lost response, a
            # crash) must still bring the prospect up to date instead of being ignored.
            "update": True,
            "prospects": [prospect for _, prospect in items],
        }
        response = await self.http.request("POST", ADD_PROSPECTS_LIST, json_body=body)
        if response.status >= 400:
            error = error_of(response) or WoodpeckerError(f"HTTP {response.status}", "")
            if error.code not in RECORD_CODES:
                raise ConnectorError(f"Woodpecker refused add_prospects_list: {error}")
            if len(items) == 1:
                return [(items[0][0], error)]
            # Whether one bad prospect fails the whole request or only its own item is not
            # documented. The sandbox answers per item; if the API refuses the whole request
            # instead, halve it until the prospect at fault stands alone.
            middle = len(items) // 2
            return await self._upsert_batch(items[:middle]) + await self._upsert_batch(
                items[middle:]
            )
        self._expect_ok(response, "adding prospects")
        outcomes = self._read_back(items, response.json())
        unconfirmed = [prospect["email"] for prospect, outcome in outcomes if outcome is None]
        ids_by_email: dict[str, str] = {}
        if unconfirmed:
            # The per-item part of the answer is a community-documented fact: when an item
            # carries no id, ask for the prospects by email instead of guessing.
            for record in await self.lookup_by_email(unconfirmed):
                ids_by_email[_email_key(record)] = record.id
        done: list[tuple[RecordWrite, str | WoodpeckerError]] = []
        for (write, _), (prospect, outcome) in zip(items, outcomes, strict=True):
            final = outcome
            if final is None:
                final = ids_by_email.get(prospect["email"].strip().lower()) or WoodpeckerError(
                    E_RECORD_NOT_FOUND, "Woodpecker did not confirm this prospect"
                )
            if isinstance(final, str):
                self._emails[final] = prospect["email"]
            done.append((write, final))
        return done

    def _read_back(
        self, items: Sequence[tuple[RecordWrite, dict[str, str]]], body: Any
    ) -> list[tuple[dict[str, str], str | WoodpeckerError | None]]:
        """Match the answer's ``prospects`` items to the writes, by email (then by position)."""
        answered = body.get("prospects") if isinstance(body, dict) else None
        if not isinstance(answered, list):
            answered = []
        by_email: dict[str, list[dict[str, Any]]] = {}
        for entry in answered:
            if isinstance(entry, dict) and isinstance(entry.get("email"), str):
                by_email.setdefault(entry["email"].strip().lower(), []).append(entry)
        positional = len(answered) == len(items) and not by_email
        outcomes: list[tuple[dict[str, str], str | WoodpeckerError | None]] = []
        for index, (_, prospect) in enumerate(items):
            candidates = by_email.get(prospect["email"].strip().lower())
            item: Any = None
            if candidates:
                item = candidates.pop(0)
            elif positional:
                item = answered[index]
            outcomes.append((prospect, _item_outcome(item)))
        return outcomes

    async def archive(self, ids: Sequence[str]) -> list[WriteResult]:
        """Delete prospects globally (also from every campaign): Woodpecker has no archive."""
        results: dict[str, WriteResult] = {}
        numeric = []
        for record_id in ids:
            if record_id.isdigit():
                numeric.append(record_id)
            else:
                results[record_id] = WriteResult(record_id, record_id, "not a Woodpecker id")
        for chunk in _id_chunks(numeric):
            for record_id, problem in await self._delete(chunk):
                results[record_id] = WriteResult(record_id, record_id, problem)
                if problem is None:
                    self._emails.pop(record_id, None)
        return [results[i] for i in ids]

    async def _delete(self, ids: Sequence[str]) -> list[tuple[str, str | None]]:
        response = await self.http.request("DELETE", PROSPECTS, params={"id": ",".join(ids)})
        if response.status < 300:
            return [(i, None) for i in ids]  # 200 with no body [vendors.md §3.2]
        error = error_of(response) or WoodpeckerError(f"HTTP {response.status}", "")
        if error.code not in RECORD_CODES:
            raise ConnectorError(f"Woodpecker refused to delete prospects: {error}")
        if len(ids) == 1:
            # a prospect already gone is what a delete wants
            return [(ids[0], None if error.code == E_RECORD_NOT_FOUND else str(error))]
        middle = len(ids) // 2
        return await self._delete(ids[:middle]) + await self._delete(ids[middle:])

    # --- helpers --------------------------------------------------------------------------

    def _expect_ok(self, response: HttpResponse, doing: str) -> None:
        if 200 <= response.status < 300:
            return
        error = error_of(response)
        reason = str(error) if error else f"HTTP {response.status}"
        raise ConnectorError(f"Woodpecker refused {doing}: {reason}")


def _item_outcome(item: Any) -> str | WoodpeckerError | None:
    if not isinstance(item, dict):
        return None
    error = error_in(item)
    if error is not None:
        return error
    prospect_id = item.get("id") or item.get("prospect_id")
    if isinstance(prospect_id, int | str) and str(prospect_id).isdigit():
        return str(prospect_id)
    return None


def _email_key(record: RemoteRecord) -> str:
    email = record.data.get("email")
    return email.strip().lower() if isinstance(email, str) else ""


def _total_count(response: HttpResponse) -> int | None:
    for name, value in response.headers.items():
        if name.lower() == "x-total-count":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _id_chunks(ids: Sequence[str]) -> list[list[str]]:
    """Split ids so that ``id=1,2,…`` stays well below Woodpecker's URL length limit."""
    chunks: list[list[str]] = []
    current: list[str] = []
    length = 0
    for record_id in ids:
        if current and length + len(record_id) + 1 > MAX_ID_QUERY_CHARS:
            chunks.append(current)
            current, length = [], 0
        current.append(record_id)
        length += len(record_id) + 1
    if current:
        chunks.append(current)
    return chunks


def _bounded(config: Mapping[str, Any], key: str, default: int, highest: int) -> int:
    raw = config.get(key)
    try:
        value = default if raw is None or raw == "" else int(raw)
    except (TypeError, ValueError):
        raise ConnectorConfigError(f"{key} must be a whole number", key=key) from None
    if not 1 <= value <= highest:
        raise ConnectorConfigError(f"{key} must be between 1 and {highest}", key=key)
    return value


@dataclasses.dataclass(frozen=True)
class _Page:
    """One listed page: its rows (empty for a 204), ``X-Total-Count``, the ``diff`` it used."""

    rows: list[Any]
    total: int | None
    diff: str | None


def _last_page(number: int, page: _Page, *, per_page: int, seen: set[str]) -> int | None:
    """The last page, as the sequential listing would find it once page ``number`` came: the
    read-ahead fetches no page that listing would not have asked for."""
    if not page.rows or len(page.rows) < per_page:
        return number
    if page.total is None:
        return None
    if number * per_page < page.total:
        return -(-page.total // per_page)
    fresh = {str(row.get("id", "")) for row in page.rows if isinstance(row, dict)} - seen
    return number if len(seen) + len(fresh) >= page.total else None
