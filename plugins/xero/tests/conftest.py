"""Fixtures: Xero sandboxes on 127.0.0.1, real connectors pointed at them, and a contract check.

Every sandbox started through :func:`xero` records each Accounting and identity exchange; when
the test ends, every request the connector sent (and every answer whose status the spec
documents) is validated against Xero's own OpenAPI spec in ``../shared/specs/xero/``. A test
therefore fails if the connector or the sandbox strays from the spec, whatever it is about.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
import warnings
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from syncd_xero.connector import XeroConnector
from syncd_xero.sandbox import STATE_KEY, make_app
from syncd_xero.sandbox_accounting import Accounting

from syncd.connector import ConnectorContext
from syncd.http import RetryPolicy
from syncd.sandbox import SandboxServer

SPECS = Path(__file__).resolve().parents[4] / "shared" / "specs" / "xero"
CLIENT_ID = "sandbox-client"
CLIENT_SECRET = "sandbox-secret"
UK = "Demo Company (UK)"
#: marks a test's own deliberately raw requests: their answers are checked, they are not
RAW_HEADER = "X-Test-Raw"
FAST = RetryPolicy(attempts=6, initial_wait=0.01, max_wait=0.05, longest_inline_wait=5.0)


# --- the contract ---------------------------------------------------------------------------


@cache
def _openapi(name: str) -> Any:
    """One parsed spec per session: the accounting spec is ~900 KB, so parse it once, with the C
    YAML loader, and skip openapi-core's (slow) validation of the spec document itself."""
    import yaml
    from openapi_core import Config, OpenAPI

    with (SPECS / name).open("rb") as handle:
        document = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return OpenAPI.from_dict(document, config=Config(spec_validator_cls=None))


@dataclass
class Exchange:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes
    status: int
    response_headers: dict[str, str]
    response_body: bytes

    @property
    def spec(self) -> str | None:
        if self.path.startswith("/api.xro/2.0/"):
            return "xero_accounting.yaml"
        if self.path.lower().startswith("/connections"):
            return "xero-identity.yaml"
        return None


def _validate(exchange: Exchange) -> list[str]:
    from openapi_core.datatypes import RequestParameters
    from werkzeug.datastructures import Headers, ImmutableMultiDict

    name = exchange.spec
    if name is None:
        return []
    api = _openapi(name)
    path = exchange.path
    if name == "xero-identity.yaml":
        path = "/Connections" + path[len("/connections") :]

    class Request:
        host_url = "https://api.xero.com"
        method = exchange.method.lower()
        body = exchange.body or None
        content_type = exchange.headers.get("Content-Type", "application/json")
        parameters = RequestParameters(
            query=ImmutableMultiDict(exchange.query),
            header=Headers(exchange.headers),
            cookie=ImmutableMultiDict(),
        )

        def __init__(self) -> None:
            self.path = path

        @property
        def full_url_pattern(self) -> str:
            return self.host_url + self.path

    class Response:
        status_code = exchange.status
        data = exchange.response_body
        content_type = exchange.response_headers.get("Content-Type", "application/json").split(";")[
            0
        ]
        headers = Headers(exchange.response_headers)

    from openapi_core.templating.responses.exceptions import ResponseNotFound

    problems = []
    request = Request()
    with warnings.catch_warnings():
        # openapi-core cannot check OAuth2 security schemes and says so on every call
        warnings.simplefilter("ignore", UserWarning)
        if RAW_HEADER not in exchange.headers:
            try:
                api.validate_request(request)
            except Exception as exc:
                problems.append(f"request {exchange.method} {exchange.path}: {_reason(exc)}")
        # The identity spec's own example dates carry no offset, which its "date-time" format
        # refuses, so only Accounting answers are held to their schemas.
        if name == "xero_accounting.yaml":
            try:
                api.validate_response(request, Response())
            except ResponseNotFound:
                pass  # a status the spec does not document (401, 403, 429, 5xx)
            except Exception as exc:
                problems.append(
                    f"response {exchange.status} to {exchange.method} {exchange.path}: "
                    f"{_reason(exc)}"
                )
    return problems


def _reason(exc: BaseException) -> str:
    details = [str(exc)]
    cause = exc.__cause__
    while cause is not None:
        details.append(str(cause)[:500])
        cause = cause.__cause__
    return " <- ".join(details)


def recorder(log: list[Exchange]) -> Any:
    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        interesting = request.path.startswith("/api.xro/") or request.path.lower().startswith(
            "/connections"
        )
        body = await request.read() if interesting else b""
        response = await handler(request)
        if interesting:
            raw = getattr(response, "body", None)
            log.append(
                Exchange(
                    request.method,
                    request.path,
                    list(request.query.items()),
                    dict(request.headers),
                    body,
                    response.status,
                    {**dict(response.headers), "Content-Type": response.content_type},
                    raw if isinstance(raw, bytes) else b"",
                )
            )
        return response

    return record


# --- sandboxes and connectors ---------------------------------------------------------------


class Prompt:
    """``syncd auth``'s prompt, played by a browser that consents and reports where it landed."""

    def __init__(self) -> None:
        self.shown: list[str] = []
        self.url: str | None = None
        self.tamper: Callable[[str], str] | None = None
        #: set when the connector says it waits for the browser (the loopback listener)
        self.waiting = asyncio.Event()

    def show(self, text: str) -> None:
        self.shown.append(text)
        if "Waiting for the browser" in text:
            self.waiting.set()
        for word in text.split():
            if "/identity/connect/authorize?" in word:
                self.url = word

    def ask(self, question: str) -> str:
        assert self.url is not None

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: Any, **kwargs: Any) -> None:
                return None

        try:
            urllib.request.build_opener(NoRedirect).open(self.url, timeout=120)
        except urllib.error.HTTPError as redirect:
            location = str(redirect.headers["Location"])
            return self.tamper(location) if self.tamper else location
        raise AssertionError("the authorize page did not redirect")


@dataclass
class Xero:
    server: SandboxServer
    state_dir: Path
    exchanges: list[Exchange] = field(default_factory=list)
    connectors: list[XeroConnector] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def accounting(self) -> Accounting:
        return self.server.app[STATE_KEY]

    def settings(self, **overrides: Any) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "tenant": UK,
            "api_url": self.url,
            "identity_url": self.url,
            "login_url": self.url,
            "page_size": 100,
        }
        settings.update(overrides)
        return {k: v for k, v in settings.items() if v is not None}

    def connector(self, side: str = "a", sync: str = "t", **overrides: Any) -> XeroConnector:
        connector = XeroConnector(
            self.settings(**overrides), ConnectorContext(sync, side, self.state_dir)
        )
        connector._identity.retry = FAST
        connector._plain.retry = FAST
        self.connectors.append(connector)
        return connector

    async def authorized(self, side: str = "a", sync: str = "t", **overrides: Any) -> XeroConnector:
        """A connector that went through ``syncd auth`` and ``open()``."""
        connector = self.connector(side, sync, **overrides)
        await connector.authorize(Prompt())
        await connector.open()
        connector.api.retry = FAST
        return connector

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, self.url + path, json=body) as response,
        ):
            assert response.status < 300, await response.text()
            return await response.json()

    async def contacts(self, tenant: str | None = None) -> list[dict[str, Any]]:
        query = f"?tenant={tenant}" if tenant else ""
        body = await self.control("GET", f"/_sandbox/xero/contacts{query}")
        return list(body["Contacts"])

    async def add(self, *contacts: dict[str, Any]) -> list[dict[str, Any]]:
        body = await self.control("POST", "/_sandbox/xero/contacts", {"Contacts": list(contacts)})
        return list(body["Contacts"])

    async def state(self) -> dict[str, Any]:
        return dict(await self.control("GET", "/_sandbox/xero/state"))

    async def switches(self, **values: Any) -> None:
        await self.control("POST", "/_sandbox/switches", values)

    async def calls(self) -> dict[str, int]:
        return dict((await self.control("GET", "/_sandbox/calls"))["by_route"])

    def contract_problems(self) -> list[str]:
        return [problem for exchange in self.exchanges for problem in _validate(exchange)]


StartXero = Callable[..., Coroutine[Any, Any, Xero]]


@pytest.fixture
def prompt_factory() -> type[Prompt]:
    return Prompt


@pytest.fixture
async def xero(tmp_path: Path) -> AsyncIterator[StartXero]:
    """``await xero(seed=1, count=120, rate_limits=False)`` starts a sandbox."""
    async with AsyncExitStack() as stack:
        started: list[Xero] = []

        async def start(seed: int | None = None, **options: Any) -> Xero:
            options.setdefault("rate_limits", False)
            extra = options.pop("middlewares", [])
            app = make_app(seed, options)
            env = Xero(SandboxServer(app), tmp_path / f"state{len(started)}")
            app.middlewares.insert(0, recorder(env.exchanges))
            app.middlewares.extend(extra)
            await stack.enter_async_context(env.server)
            started.append(env)
            return env

        yield start
        for env in started:
            for connector in env.connectors:
                await connector.close()
        problems = [problem for env in started for problem in env.contract_problems()]
        assert not problems, "contract violations:\n" + "\n".join(problems[:20])


def dump(value: Any) -> str:
    return json.dumps(value, indent=1, default=str)
