"""The Xero sandbox's webhooks: it posts CONTACT events the way Xero does (vendors.md §1.8).

Configured with a delivery URL and the app's webhook key (the sandbox options ``webhook_url`` and
``webhook_key``, or ``POST /_sandbox/xero/webhooks``), it first runs **Intent to Receive**: a few
payloads without events, some signed with the key and some deliberately with another, in random
order; the endpoint must answer 200 with no body to the good ones and 401 to the bad ones, or the
subscription stays off (``GET /_sandbox/xero/webhooks`` says why). Once it passed, every contact
stored (through the API or the ``/_sandbox`` edit routes) becomes a CREATE or UPDATE event; the
events of a short window (``batch_window``, default 0.2 s) go out in one batched payload with
Xero's shape (``events``, ``firstEventSequence``, ``lastEventSequence``, ``entropy``) and the
``x-xero-signature`` header. A delivery that fails (not 200, or no answer within 5 s) is retried
with exponential backoff (``retry_initial``, doubling, ``retry_max`` apart, up to ``retry_for``
seconds in all — Xero retries for 24 hours).

Misbehaviour, for tests (``POST /_sandbox/xero/webhooks`` with any of): ``delay`` (seconds before
each delivery), ``drop`` (the next N deliveries are never sent: a lost webhook), ``duplicate``
(the next N deliveries are sent twice), ``bad_signature`` (the next N are signed wrongly).

Control routes (**not Xero's API**): ``POST /_sandbox/xero/webhooks`` ``{"url", "key", ...}``
(re)subscribes and answers once Intent to Receive has run; ``GET /_sandbox/xero/webhooks`` the
subscription and its delivery counts; ``DELETE /_sandbox/xero/webhooks`` turns it off.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import string
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web

from syncd_xero.sandbox_accounting import Accounting
from syncd_xero.sandbox_data import Org
from syncd_xero.webhooks import signature

ANSWER_WITHIN = 5.0
ITR_GOOD, ITR_BAD = 2, 2


@dataclass
class Delivery:
    sequence: tuple[int, int]
    events: int
    attempts: int = 0
    statuses: list[int | str] = field(default_factory=list)
    delivered: bool = False
    first_sent_at: float | None = None


class WebhookSender:
    def __init__(self, accounting: Accounting) -> None:
        self.accounting = accounting
        self.url: str | None = None
        self.key: str | None = None
        self.active = False
        self.problem: str | None = "not configured"
        self.intent_to_receive: list[dict[str, Any]] = []
        self.batch_window = 0.2
        self.retry_initial = 0.5
        self.retry_max = 60.0
        self.retry_for = 24 * 3600.0
        self.delay = 0.0
        self.drop = 0
        self.duplicate = 0
        self.bad_signature = 0
        self.sequence = 0
        self.events: list[dict[str, Any]] = []
        self.deliveries: list[Delivery] = []
        self.dropped = 0
        self._flush: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._session: aiohttp.ClientSession | None = None
        self.rng = random.Random()
        for org in accounting.orgs.values():
            org.on_change = self.contact_changed

    # --- configuration ----------------------------------------------------------------------

    def configure(self, values: dict[str, Any]) -> None:
        for name in ("batch_window", "retry_initial", "retry_max", "retry_for", "delay"):
            if name in values:
                setattr(self, name, max(0.0, float(values[name])))
        for name in ("drop", "duplicate", "bad_signature"):
            if name in values:
                setattr(self, name, max(0, int(values[name])))

    async def subscribe(self, url: str, key: str) -> None:
        """Set the delivery URL and key and run Intent to Receive."""
        self.url, self.key, self.active = url, key, False
        self.problem = "intent to receive has not passed"
        self.intent_to_receive = []
        checks = [True] * ITR_GOOD + [False] * ITR_BAD
        self.rng.shuffle(checks)
        for good in checks:
            body = json.dumps(
                {
                    "events": [],
                    "firstEventSequence": 0,
                    "lastEventSequence": 0,
                    "entropy": self._entropy(),
                },
                separators=(",", ":"),
            ).encode()
            status, answer = await self._post(body, good)
            expected = 200 if good else 401
            passed = status == expected and (not good or answer == b"")
            self.intent_to_receive.append(
                {"signed_correctly": good, "status": status, "passed": passed}
            )
            if not passed:
                self.problem = (
                    f"intent to receive failed: a {'correctly' if good else 'wrongly'} signed "
                    f"payload was answered {status}"
                    + (" with a body" if status == 200 and answer else "")
                    + f" (expected {expected}{' with no body' if good else ''})"
                )
                return
        self.active, self.problem = True, None

    def unsubscribe(self) -> None:
        self.active, self.problem = False, "turned off"

    def state(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "active": self.active,
            "problem": self.problem,
            "intent_to_receive": self.intent_to_receive,
            "events_waiting": len(self.events),
            "deliveries": len(self.deliveries),
            "delivered": sum(1 for d in self.deliveries if d.delivered),
            "attempts": sum(d.attempts for d in self.deliveries),
            "dropped": self.dropped,
            "events_delivered": sum(d.events for d in self.deliveries if d.delivered),
            "last": [
                {
                    "sequence": list(d.sequence),
                    "events": d.events,
                    "attempts": d.attempts,
                    "statuses": d.statuses,
                    "delivered": d.delivered,
                }
                for d in self.deliveries[-20:]
            ],
        }

    # --- events -----------------------------------------------------------------------------

    def contact_changed(self, org: Org, contact_id: str, created: bool) -> None:
        if not self.active:
            return
        now = datetime.now(UTC)
        self.events.append(
            {
                "resourceUrl": f"https://api.xero.com/api.xro/2.0/Contacts/{contact_id}",
                "resourceId": contact_id,
                "eventDateUtc": now.strftime("%Y-%m-%dT%H:%M:%S.")
                + f"{now.microsecond // 1000:03d}",
                "eventType": "CREATE" if created else "UPDATE",
                "eventCategory": "CONTACT",
                "tenantId": org.tenant_id,
                "tenantType": "ORGANISATION",
            }
        )
        if self._flush is None or self._flush.done():
            with contextlib.suppress(RuntimeError):  # no running loop: a seed before start-up
                self._flush = asyncio.get_running_loop().create_task(self._send_batch())

    async def _send_batch(self) -> None:
        await asyncio.sleep(self.batch_window)  # gather the events of one burst
        events, self.events = self.events, []
        if not events:
            return
        first = self.sequence + 1
        self.sequence += len(events)
        payload = {
            "events": events,
            "firstEventSequence": first,
            "lastEventSequence": self.sequence,
            "entropy": self._entropy(),
        }
        delivery = Delivery((first, self.sequence), len(events))
        self.deliveries.append(delivery)
        if self.drop:
            self.drop -= 1
            self.dropped += 1
            return
        copies = 1
        if self.duplicate:
            self.duplicate -= 1
            copies = 2
        good = True
        if self.bad_signature:
            self.bad_signature -= 1
            good = False
        body = json.dumps(payload, separators=(",", ":")).encode()
        for _ in range(copies):
            task = asyncio.get_running_loop().create_task(self._deliver(delivery, body, good))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, delivery: Delivery, body: bytes, good: bool) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        started = time.monotonic()
        wait = self.retry_initial
        while True:
            delivery.attempts += 1
            if delivery.first_sent_at is None:
                delivery.first_sent_at = time.time()
            status, _ = await self._post(body, good)
            delivery.statuses.append(status)
            if status == 200:
                delivery.delivered = True
                return
            if time.monotonic() - started + wait > self.retry_for:
                return
            await asyncio.sleep(wait)  # Xero's retries: less and less often
            wait = min(self.retry_max, wait * 2)
            good = True  # a retry is signed as Xero signs

    async def _post(self, body: bytes, good: bool) -> tuple[int | str, bytes]:
        if not self.url or not self.key:
            return "not configured", b""
        key = self.key if good else self.key + "-not-the-key"
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=ANSWER_WITHIN)
            )
        try:
            async with self._session.post(
                self.url,
                data=body,
                headers={
                    "Content-Type": "application/json; charset=utf-8",
                    "x-xero-signature": signature(key, body),
                },
            ) as response:
                return response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return type(exc).__name__, b""

    def _entropy(self) -> str:
        return "".join(self.rng.choice(string.ascii_uppercase) for _ in range(20))

    async def close(self) -> None:
        for task in [*self._tasks, *([self._flush] if self._flush else [])]:
            task.cancel()
        if self._session is not None:
            await self._session.close()


WEBHOOKS_KEY = web.AppKey("xero_webhooks", WebhookSender)


def install(app: web.Application, accounting: Accounting, options: dict[str, Any]) -> None:
    """Webhooks for the sandbox app: the sender, its control routes, and the options'
    subscription (Intent to Receive runs once the app has started)."""
    sender = WebhookSender(accounting)
    sender.configure(options)
    app[WEBHOOKS_KEY] = sender
    url, key = options.get("webhook_url"), options.get("webhook_key")

    async def on_startup(app: web.Application) -> None:
        if url and key:
            task = asyncio.get_running_loop().create_task(sender.subscribe(str(url), str(key)))
            sender._tasks.add(task)
            task.add_done_callback(sender._tasks.discard)

    async def on_cleanup(app: web.Application) -> None:
        await sender.close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.add_routes(_routes(sender))


def _routes(sender: WebhookSender) -> web.RouteTableDef:
    table = web.RouteTableDef()

    @table.get("/_sandbox/xero/webhooks")
    async def state(request: web.Request) -> web.Response:
        return web.json_response(sender.state())

    @table.post("/_sandbox/xero/webhooks")
    async def subscribe(request: web.Request) -> web.Response:
        try:
            body = await request.json() if request.can_read_body else {}
            sender.configure(body)
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": f"bad webhook settings: {exc}"}, status=400)
        if body.get("url") and body.get("key"):
            await sender.subscribe(str(body["url"]), str(body["key"]))
        return web.json_response(sender.state())

    @table.delete("/_sandbox/xero/webhooks")
    async def unsubscribe(request: web.Request) -> web.Response:
        sender.unsubscribe()
        return web.json_response(sender.state())

    return table
