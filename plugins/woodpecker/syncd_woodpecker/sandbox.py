"""An emulator of the part of Woodpecker's v1 API that the connector uses.

Endpoints (under ``/rest/v1``, authenticated with ``x-api-key``, or HTTP Basic with the key as
user name or password, as the legacy docs say):

* ``GET /prospects``: ``page`` (from 1), ``per_page`` (default 100, at most 1,000), ``sort``
  (``+id`` by default), filters ``id`` (comma-separated), ``status``, ``search``
  (``field=value,field=value``: AND across fields, OR within one; ``.*x.*`` matches part of a
  value; every listed field, ``organization_id`` and the legacy ``snipet1``-``snipet4``
  spellings included), ``campaigns_id``, ``activity``, ``interested``, ``contacted`` and
  ``diff`` (``updated>YYYY-MM-DDTHH:mm:ss+HHMM``); ``campaigns_details=true`` adds each
  prospect's campaigns. A bare JSON array with ``X-Total-Count``;
  ``204`` and no body when a page is empty.
* ``POST /add_prospects_list``: ``{"prospects": [...], "update"?, "file_name"?}``, up to 20,000
  prospects. Without ``"update": true`` existing prospects (matched by email, case-insensitively)
  are silently left unchanged. Answers ``{"prospects": [{"email", "id"}...], "status": {...}}``;
  a refused prospect's item carries ``"status": "ERROR"``, ``code`` and ``msg``.
* ``DELETE /prospects?id=1,2``: a global hard delete; ``200`` and no body; unknown ids ignored.

* ``GET /me``: the account the key belongs to (the docs' example of an authenticated call).

Errors are ``{"status": {"status": "ERROR", "code": "E_…", "msg": "…"}}``: 401 ``E_SESSION``
for a bad key, 404 ``E_URL_NOT_FOUND``, 400 for the rest; ``error_rate`` faults answer 500, 502,
503 and 504 in equal shares with ``E_INTERNAL_ERROR`` in the same shape (Woodpecker documents no
5xx: the code is inferred). **One request at a time per API key**, as documented: up to six more
wait in line for up to 15 seconds, the rest are refused with ``E_TOO_MANY_REQUESTS``
(``sandbox_queue``; vendors.md §3.4, §6). The option ``concurrency="strict"`` refuses any request
that finds the key busy instead (the stricter reading, to show a connector never overlaps).

Campaigns are emulated as far as the listing filters need them (``store.add_campaign``,
``store.enrol``): ``campaigns_id``, ``activity``, ``interested``, ``contacted`` and
``campaigns_details=true``.

Options (``factory(seed, options)``), for what vendors.md marks secondary or unknown:

* ``api_key`` / ``api_keys``: accepted keys (default ``wp-sandbox-key``)
* ``count``: seeded prospects (default 300, only with a seed)
* ``diff``: ``supported`` (default), ``refused`` (400 ``E_WRONG_PARAM``) or ``ignored``
* ``batch_errors``: ``item`` (default: a bad prospect fails alone) or ``request`` (a bad
  prospect fails the whole request with 400)
* ``per_page_limit``: 1000 (default) or 500 (what older clients enforced)
* ``too_many_status``: 429 (default) or 400, the status of ``E_TOO_MANY_REQUESTS``
* ``concurrency``: ``queue`` (default, as documented) or ``strict``; ``queue_size`` (6) and
  ``queue_timeout`` (15 seconds) set the line
* ``utc_offset``: the zone ``updated`` is written in (default ``+0200``, Woodpecker being Polish)
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from syncd.sandbox import Handler, install_switches, option_list
from syncd_woodpecker.fields import STATUSES
from syncd_woodpecker.sandbox_queue import (
    DOCUMENTED_QUEUE,
    DOCUMENTED_WAIT,
    Refused,
    SerialQueue,
)
from syncd_woodpecker.sandbox_seed import seed_campaigns, seed_prospects
from syncd_woodpecker.sandbox_store import (
    ACTIVITIES,
    INTERESTS,
    SEARCHABLE_FIELDS,
    SORTABLE_FIELDS,
    Enrolment,
    Prospect,
    ProspectStore,
    parse_offset,
)

DEFAULT_API_KEY = "wp-sandbox-key"
MAX_BATCH = 20_000
#: the DELETE URL limit [vendors.md §3.2]
MAX_URL_CHARS = 4_100

STORE_KEY = web.AppKey("woodpecker_store", ProspectStore)
OPTIONS_KEY = web.AppKey("woodpecker_options", object)
QUEUE_KEY = web.AppKey("woodpecker_queue", SerialQueue)
#: Woodpecker documents no 5xx: every one of them, in equal shares (inferred)
DEFAULT_ERROR_STATUSES = {"500": 1.0, "502": 1.0, "503": 1.0, "504": 1.0}
_FAULT_MESSAGES = {
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service temporarily unavailable",
    504: "Gateway timeout",
}

_DIFF = re.compile(r"^(updated|last_opened|last_clicked)([<>])(.+)$")


@dataclass
class SandboxOptions:
    api_keys: frozenset[str]
    diff: str = "supported"
    batch_errors: str = "item"
    per_page_limit: int = 1000
    too_many_status: int = 429
    concurrency: str = "queue"
    queue_size: int = DOCUMENTED_QUEUE
    queue_timeout: float = DOCUMENTED_WAIT

    @classmethod
    def from_dict(cls, options: dict[str, Any]) -> SandboxOptions:
        keys = option_list(options.get("api_keys")) or [options.get("api_key") or DEFAULT_API_KEY]
        made = cls(
            api_keys=frozenset(str(k) for k in keys),
            diff=str(options.get("diff", "supported")),
            batch_errors=str(options.get("batch_errors", "item")),
            per_page_limit=int(options.get("per_page_limit", 1000)),
            too_many_status=int(options.get("too_many_status", 429)),
            concurrency=str(options.get("concurrency", "queue")),
            queue_size=int(options.get("queue_size", DOCUMENTED_QUEUE)),
            queue_timeout=float(options.get("queue_timeout", DOCUMENTED_WAIT)),
        )
        if made.concurrency not in ("queue", "strict"):
            raise ValueError("concurrency must be queue or strict")
        if made.diff not in ("supported", "refused", "ignored"):
            raise ValueError("diff must be supported, refused or ignored")
        if made.batch_errors not in ("item", "request"):
            raise ValueError("batch_errors must be item or request")
        return made


def error_response(code: str, msg: str, status: int = 400) -> web.Response:
    return web.json_response(
        {"status": {"status": "ERROR", "code": code, "msg": msg}}, status=status
    )


def fault(request: web.Request, status: int) -> web.StreamResponse:
    """An ``error_rate`` fault in Woodpecker's ``{"status": {...}}`` shape."""
    return error_response("E_INTERNAL_ERROR", _FAULT_MESSAGES.get(status, "Server error"), status)


class ParamError(Exception):
    def __init__(self, msg: str) -> None:
        super().__init__(msg)
        self.msg = msg


def store_of(app: web.Application) -> ProspectStore:
    return app[STORE_KEY]


def make_app(seed: int | None = None, options: dict[str, Any] | None = None) -> web.Application:
    """The Woodpecker emulator, seeded with sample prospects when ``seed`` is given."""
    options = dict(options or {})
    settings = SandboxOptions.from_dict(options)
    store = ProspectStore(parse_offset(str(options.get("utc_offset", "+0200"))))
    if seed is not None:
        seed_prospects(store, seed, int(options.get("count", 300)))
        seed_campaigns(store, seed)

    def too_many(request: web.Request, retry_after: float) -> web.StreamResponse:
        response = error_response(
            "E_TOO_MANY_REQUESTS",
            "Too many requests: only one request is processed at a time",
            status=settings.too_many_status,
        )
        # Whether Woodpecker sends Retry-After is not documented; the switches' bursts send it
        # so that tests can keep the pause tiny.
        response.headers["Retry-After"] = (
            str(int(retry_after)) if retry_after >= 1 else str(retry_after)
        )
        return response

    line = SerialQueue(
        queue_size=0 if settings.concurrency == "strict" else settings.queue_size,
        timeout=settings.queue_timeout,
    )

    @web.middleware
    async def one_at_a_time(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/_sandbox/"):
            return await handler(request)
        account = request.headers.get("x-api-key") or request.headers.get("Authorization") or ""
        try:
            await line.acquire(account)
        except Refused as refused:
            store.refused_concurrent += 1
            return error_response(
                "E_TOO_MANY_REQUESTS",
                f"Too many requests: only one request is processed at a time ({refused.reason})",
                status=settings.too_many_status,
            )
        try:
            return await handler(request)
        finally:
            line.release(account)

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/_sandbox/"):
            return await handler(request)
        if _api_key(request) not in settings.api_keys:
            return error_response("E_SESSION", "Invalid API key or session expired", 401)
        return await handler(request)

    # one_at_a_time is outermost so that the switches' latency counts as time in flight
    app = web.Application(middlewares=[one_at_a_time], client_max_size=64 * 1024 * 1024)
    app[STORE_KEY] = store
    app[OPTIONS_KEY] = settings
    app[QUEUE_KEY] = line
    install_switches(app, too_many=too_many, fault=fault, error_statuses=DEFAULT_ERROR_STATUSES)
    app.middlewares.append(authenticate)

    routes = _Routes(store, settings)
    app.router.add_get("/rest/v1/me", routes.me)
    app.router.add_get("/rest/v1/prospects", routes.list_prospects)
    app.router.add_delete("/rest/v1/prospects", routes.delete_prospects)
    app.router.add_post("/rest/v1/add_prospects_list", routes.add_prospects_list)
    app.router.add_route("*", "/{tail:.*}", routes.not_found)
    return app


def _api_key(request: web.Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    # legacy: the key as user name (``KEY:anything``) or as password (``:KEY``)
    user, _, password = decoded.partition(":")
    return user or password or None


class _Routes:
    def __init__(self, store: ProspectStore, options: SandboxOptions) -> None:
        self.store = store
        self.options = options

    async def not_found(self, request: web.Request) -> web.Response:
        return error_response("E_URL_NOT_FOUND", f"URL not found: {request.path}", 404)

    async def me(self, request: web.Request) -> web.Response:
        """The key's account. The body's fields are not documented (inferred: who and which
        company, as the app's account page shows them)."""
        return web.json_response(self.store.account)

    # --- GET /rest/v1/prospects ---------------------------------------------------------

    async def list_prospects(self, request: web.Request) -> web.Response:
        if self.store.gate is not None:
            self.store.at_gate.set()
            await self.store.gate.wait()
        query = request.query
        try:
            page = _positive_int(query.get("page", "1"), "page")
            per_page = _positive_int(query.get("per_page", "100"), "per_page")
            if per_page > self.options.per_page_limit:
                raise ParamError(f"per_page must be at most {self.options.per_page_limit}")
            matches = self._filter(query)
            matches = _sorted(matches, query.get("sort", "+id"))
        except ParamError as exc:
            return error_response("E_WRONG_PARAM", exc.msg)
        window = matches[(page - 1) * per_page : page * per_page]
        if not window:
            return web.Response(status=204)
        details = query.get("campaigns_details", "").lower() == "true"
        listed = []
        for prospect in window:
            body = prospect.to_json(self.store.tz)
            if details:
                body["campaigns_details"] = [
                    e.to_json(prospect.email) for e in prospect.campaigns.values()
                ]
            listed.append(body)
        return web.json_response(listed, headers={"X-Total-Count": str(len(matches))})

    def _filter(self, query: Any) -> list[Prospect]:
        prospects = self.store.ordered()
        if "id" in query:
            wanted = {_positive_int(part, "id") for part in query["id"].split(",") if part}
            prospects = [p for p in prospects if p.id in wanted]
        if "status" in query:
            statuses = {s.strip().upper() for s in query["status"].split(",")}
            if not statuses <= set(STATUSES):
                raise ParamError(f"unknown status in {query['status']!r}")
            prospects = [p for p in prospects if p.status in statuses]
        if "search" in query:
            prospects = [p for p in prospects if _search_matches(p, _parse_search(query["search"]))]
        prospects = _campaign_filters(prospects, query)
        if "diff" in query and self.options.diff != "ignored":
            if self.options.diff == "refused":
                raise ParamError("unknown parameter: diff")
            field, op, moment = _parse_diff(query["diff"])
            prospects = [p for p in prospects if _compare(getattr(p, field), op, moment)]
        return prospects

    # --- POST /rest/v1/add_prospects_list -----------------------------------------------

    async def add_prospects_list(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return error_response("E_WRONG_PARAM", "the body must be JSON")
        prospects = body.get("prospects") if isinstance(body, dict) else None
        if not isinstance(prospects, list) or not prospects:
            return error_response("E_REQUIRED_ELEMENT", "prospects are missing")
        if len(prospects) > MAX_BATCH:
            return error_response("E_WRONG_PARAM", f"at most {MAX_BATCH} prospects per request")
        update = body.get("update") in (True, "true", 1)
        self.store.add_requests.append(update)

        seen: set[str] = set()
        problems = []
        for item in prospects:
            problem = self.store.validate(item, seen)
            problems.append(problem)
            if problem is None:
                seen.add(str(item["email"]).strip().lower())
        first_problem = next((p for p in problems if p is not None), None)
        if first_problem is not None and self.options.batch_errors == "request":
            return error_response(
                str(first_problem.code), f"{first_problem.email}: {first_problem.msg}"
            )

        results = [
            problem if problem is not None else self.store.upsert(item, update)
            for item, problem in zip(prospects, problems, strict=True)
        ]
        counts = {
            action: sum(1 for r in results if r.code is None and r.action == action)
            for action in ("added", "updated", "unchanged")
        }
        rejected = sum(1 for r in results if r.code is not None)
        return web.json_response(
            {
                "prospects": [r.to_json() for r in results],
                "status": {
                    "status": "OK",
                    "code": "OK",
                    "msg": f"{counts['added']} added, {counts['updated']} updated, "
                    f"{counts['unchanged']} unchanged, {rejected} rejected",
                },
            }
        )

    # --- DELETE /rest/v1/prospects ------------------------------------------------------

    async def delete_prospects(self, request: web.Request) -> web.Response:
        if len(str(request.rel_url)) > MAX_URL_CHARS:
            return web.Response(status=414, text="Request-URI Too Long")
        raw = request.query.get("id", "")
        if not raw.strip():
            return error_response("E_REQUIRED_ELEMENT", "id is required")
        try:
            ids = [_positive_int(part, "id") for part in raw.split(",") if part.strip()]
        except ParamError as exc:
            return error_response("E_WRONG_PARAM", exc.msg)
        if "campaigns_id" not in request.query:
            # campaigns are not emulated: a per-campaign delete changes nothing here
            self.store.delete(ids)
        return web.Response(status=200)


# --- query parsing --------------------------------------------------------------------------


def _positive_int(text: str, name: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ParamError(f"{name} must be a number") from None
    if value < 1:
        raise ParamError(f"{name} must be at least 1")
    return value


def _parse_search(text: str) -> dict[str, list[str]]:
    """``email=a@x.com,first_name=Jo`` → ``{"email": ["a@x.com"], "first_name": ["Jo"]}``."""
    terms: dict[str, list[str]] = {}
    last: str | None = None
    for part in text.split(","):
        name, sep, value = part.partition("=")
        if sep and name.strip() in SEARCHABLE_FIELDS:
            last = name.strip()
            terms.setdefault(last, []).append(value)
        elif last is not None:
            terms[last][-1] += "," + part  # a comma inside a value
        else:
            raise ParamError(f"cannot search on {name.strip()!r}")
    return terms


def _search_matches(prospect: Prospect, terms: dict[str, list[str]]) -> bool:
    for name, values in terms.items():
        held = prospect.value(name)
        if not any(_value_matches(held, value) for value in values):
            return False
    return True


def _value_matches(held: str, value: str) -> bool:
    value = value.strip()
    if ".*" in value:
        pattern = ".*".join(re.escape(part) for part in value.split(".*"))
        return re.fullmatch(pattern, held, re.IGNORECASE) is not None
    return held.casefold() == value.casefold()


def _choices(query: Any, name: str, allowed: tuple[str, ...]) -> set[str] | None:
    if name not in query:
        return None
    chosen = {part.strip().upper() for part in query[name].split(",") if part.strip()}
    if not chosen or not chosen <= set(allowed):
        raise ParamError(f"{name} must be one of {', '.join(allowed)}")
    return chosen


def _campaign_filters(prospects: list[Prospect], query: Any) -> list[Prospect]:
    """``campaigns_id``, ``activity``, ``interested`` and ``contacted`` (vendors.md §3.2, §6).

    ``activity`` and ``interested`` look at the prospect's part in the campaigns ``campaigns_id``
    names, or in any campaign without it; several comma-separated values match any of them
    (inferred, as for ``status``). ``contacted=1`` keeps the prospects an email went to."""
    campaign_ids: set[int] | None = None
    if "campaigns_id" in query:
        campaign_ids = {
            _positive_int(part, "campaigns_id") for part in query["campaigns_id"].split(",") if part
        }
        prospects = [p for p in prospects if campaign_ids & set(p.campaigns)]

    def parts(prospect: Prospect) -> list[Enrolment]:
        chosen = prospect.campaigns.items()
        return [e for cid, e in chosen if campaign_ids is None or cid in campaign_ids]

    activity = _choices(query, "activity", ACTIVITIES)
    if activity is not None:

        def active(prospect: Prospect) -> bool:
            enrolments = parts(prospect)
            opened = any(e.opened for e in enrolments)
            clicked = any(e.clicked for e in enrolments)
            return bool(
                ("OPENED" in activity and opened)
                or ("NOT-OPENED" in activity and enrolments and not opened)
                or ("CLICKED" in activity and clicked)
                or ("NOT-CLICKED" in activity and enrolments and not clicked)
            )

        prospects = [p for p in prospects if active(p)]
    interested = _choices(query, "interested", INTERESTS)
    if interested is not None:
        prospects = [p for p in prospects if any(e.interested in interested for e in parts(p))]
    if "contacted" in query:
        wanted = query["contacted"].strip()
        if wanted not in ("0", "1"):
            raise ParamError("contacted must be 1 or 0")
        prospects = [p for p in prospects if (p.last_contacted is not None) == (wanted == "1")]
    return prospects


def _parse_diff(text: str) -> tuple[str, str, datetime]:
    match = _DIFF.match(text.strip())
    if not match:
        raise ParamError(f"bad diff filter {text!r}")
    field, op, raw = match.groups()
    if field != "updated":
        raise ParamError(f"diff on {field} needs the activity filter")
    # an unencoded '+' arrives as a space
    raw = re.sub(r" (\d{4})$", r"+\1", raw)
    try:
        moment = datetime.strptime(raw, "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        raise ParamError(f"bad date in diff filter {raw!r}") from None
    return field, op, moment


def _compare(value: datetime | None, op: str, moment: datetime) -> bool:
    if value is None:
        return False
    return value > moment if op == ">" else value < moment


def _sorted(prospects: list[Prospect], sort: str) -> list[Prospect]:
    keys: list[tuple[str, bool]] = []
    for part in sort.split(","):
        part = part.strip()
        if not part:
            continue
        descending = part.startswith("-")
        name = part.lstrip("+-").strip()
        if name not in SORTABLE_FIELDS:
            raise ParamError(f"cannot sort on {name!r}")
        keys.append((name, descending))
    result = list(prospects)
    for name, descending in reversed(keys or [("id", False)]):
        result.sort(key=_sort_key(name), reverse=descending)
    return result


def _sort_key(name: str) -> Callable[[Prospect], Any]:
    if name == "id":
        return lambda p: p.id
    if name == "status":
        return lambda p: p.status
    if name in ("updated", "last_contacted", "last_replied"):
        return lambda p: (getattr(p, name, None) is not None, getattr(p, name, None) or 0)
    return lambda p: p.value(name).casefold()
