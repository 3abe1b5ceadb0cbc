"""The OpenAPI document against the real API: the routes, and schemathesis on a real daemon.

The document (:mod:`syncd.daemon.openapi`) is checked against the aiohttp routes of
:func:`syncd.daemon.api.make_app`, so that neither can change without the other. Then
schemathesis takes it (the very document ``GET /api/v1/openapi.json`` serves, which a test here
compares) and sends what it generates from it, valid and invalid, to a real ``syncd run`` (a
subprocess on 127.0.0.1, its syncs on the built-in CSV connector in a temporary directory): no
answer may be a 5xx, every answer must match its documented schema (status, content type,
headers, body), invalid input must be refused and valid input accepted, and every path but
``/healthz`` answers 401 without the token. Bounded: a few dozen examples per operation, and a
short run of the state machine that follows the document's links (a sync's name from
``/api/v1/syncs`` into the operations on that sync).
"""

from __future__ import annotations

import http.client
import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck

from syncd.daemon.api import make_app
from syncd.daemon.openapi import TIME_PATTERN, document
from syncd.daemon.service import Daemon
from syncd.plugins import load_plugins
from syncd.testing.daemon import DaemonProcess, free_port, wait_until, write_daemon_config

#: examples per operation in the fuzzing phase, and the state machine's budget; the whole
#: module takes well under two minutes on two busy cores
MAX_EXAMPLES = 60
STATEFUL_EXAMPLES = 25
STATEFUL_STEPS = 10

#: the sync the examples work on
SYNC = "crm-news"
#: paths authenticated by a vendor's signature instead of the token (syncd.daemon.hooks)
SIGNED_PATHS = ("/hooks/{connector}/{account}",)

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


# --- the document against the routes ---------------------------------------------------------


def documented() -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in document()["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def routed(tmp_path: Path) -> set[tuple[str, str]]:
    daemon = Daemon(make_app, tmp_path, load_plugins())
    app = make_app(daemon)
    routes = set()
    for route in app.router.routes():
        if (route.name or "").startswith("console."):
            continue  # the console's HTML pages (syncd/console), not the JSON API
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        assert path, route
        routes.add((route.method, path))
    return routes


def test_every_route_is_documented_and_every_documented_operation_is_routed(
    tmp_path: Path,
) -> None:
    routes, docs = routed(tmp_path), documented()
    assert routes - docs == set(), "routes missing from the OpenAPI document"
    assert docs - routes == set(), "documented operations that are not routed"
    assert ("GET", "/api/v1/openapi.json") in routes


def test_the_document_is_openapi_3_1_with_the_bearer_scheme_and_error_bodies() -> None:
    doc = document()
    assert doc["openapi"] == "3.1.0"
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": doc["components"]["securitySchemes"]["bearer"]["description"],
    }
    assert doc["security"] == [{"bearer": []}]
    ops = [
        (path, method, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in HTTP_METHODS
    ]
    for path, method, op in ops:
        responses = op["responses"]
        assert "500" in responses, (path, method)
        for status, response in responses.items():
            # every answer has a documented body
            target = response
            if "$ref" in response:
                target = doc["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
            assert target.get("content"), (path, method, status)
        if path == "/healthz":
            assert op["security"] == [] and "401" not in responses
        elif path in SIGNED_PATHS:
            # authenticated by the vendor's signature (401 without it), never by the token
            assert op["security"] == [] and "401" in responses
        else:
            assert "security" not in op and "401" in responses, (path, method)
    # the error body is one schema, with the codes docs/api.md lists
    error = doc["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    api_md = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text()
    for code in error["properties"]["error"]["properties"]["code"]["enum"]:
        if code != "http_error":
            assert f"`{code}`" in api_md, code
    assert "/api/v1/openapi.json" in api_md


def test_the_document_is_valid_openapi_3_1() -> None:
    from openapi_spec_validator import validate
    from openapi_spec_validator.validation import OpenAPIV31SpecValidator

    validate(document(), cls=OpenAPIV31SpecValidator)


def test_schemathesis_accepts_the_document() -> None:
    schema = schemathesis.openapi.from_dict(document())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {(op.method.upper(), op.path) for op in operations} == documented()


# --- a real daemon -----------------------------------------------------------------------------


def write_people(path: Path, prefix: str, count: int, without_email: int = 0) -> None:
    lines = ["email,first_name,last_name,title"]
    lines += [f"{prefix}{i}@example.com,First{i},Last{i},T{i}" for i in range(count)]
    lines += [f",Nomail{i},Person{i}," for i in range(without_email)]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    root = tmp_path_factory.mktemp("api-schema")
    config, state, data = root / "config", root / "state", root / "data"
    data.mkdir()
    listen = f"127.0.0.1:{free_port()}"
    write_daemon_config(config, listen, state, shutdown_deadline="10s")
    write_people(data / "crm.csv", "crm", 20, without_email=2)
    write_people(data / "news.csv", "news", 10)
    write_people(data / "shop.csv", "shop", 5)
    for name, direction, a, b in (
        ("crm-news", "two-way", "crm.csv", "news.csv"),
        ("shop-backup", "a-to-b", "shop.csv", "shop-copy.csv"),
    ):
        (config / "syncs" / f"{name}.toml").write_text(
            textwrap.dedent(
                f"""
                direction = "{direction}"
                interval = "1h"
                [a]
                connector = "csv"
                path = "{data / a}"
                [b]
                connector = "csv"
                path = "{data / b}"
                """
            )
        )
    daemon = DaemonProcess(config, state, listen)
    with daemon:
        daemon.wait_ready()
        # the first runs done, so that runs, errors and cursors have something to show
        wait_until(
            lambda: all(
                s["last_run"] is not None and s["state"] != "running"
                for s in daemon.get("/api/v1/syncs")["syncs"]
            ),
            120,
            "the first runs",
        )
        yield daemon
        log = daemon.log_text()
    assert "Traceback" not in log, log[-5000:]
    assert "API request failed" not in log, log[-5000:]


def auth(daemon: DaemonProcess) -> dict[str, str]:
    return {"Authorization": f"Bearer {daemon.token()}"}


def base_url(daemon: DaemonProcess) -> str:
    return f"http://127.0.0.1:{daemon.endpoint.port}"


@pytest.fixture(scope="module")
def api_schema(api: DaemonProcess) -> Any:
    """The document as the daemon serves it, aimed at the daemon."""
    loaded = schemathesis.openapi.from_url(
        f"{base_url(api)}/api/v1/openapi.json", headers=auth(api), timeout=30
    )
    loaded.config.update(base_url=base_url(api))
    return loaded.exclude(path=ENDLESS)


def test_the_daemon_serves_the_document_behind_the_token(api: DaemonProcess) -> None:
    assert api.get("/api/v1/openapi.json") == json.loads(json.dumps(document()))
    status, body = api.client(token=None).request("GET", "/api/v1/openapi.json")
    assert status == 401 and body["error"]["code"] == "unauthorized"


def concrete(path: str) -> str:
    return path.replace("{name}", SYNC).replace("{connector}", "xero").replace("{account}", "x")


def test_every_documented_path_but_healthz_is_401_without_the_token(api: DaemonProcess) -> None:
    for method, path in sorted(documented()):
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}):
            connection = http.client.HTTPConnection("127.0.0.1", api.endpoint.port, timeout=30)
            connection.request(method, concrete(path), headers=headers)
            response = connection.getresponse()
            body = response.read()
            connection.close()
            if path == "/healthz":
                assert response.status == 200
                continue
            if path in SIGNED_PATHS:
                # outside the bearer check: no sync uses this account, so no such path
                assert response.status == 404, (method, path, headers)
                continue
            assert response.status == 401, (method, path, headers)
            assert json.loads(body)["error"]["code"] == "unauthorized"
            assert response.getheader("WWW-Authenticate") == 'Bearer realm="syncd"'


def test_the_real_answers_have_the_documented_times(api: DaemonProcess) -> None:
    import re

    pattern = re.compile(TIME_PATTERN)
    errors = api.get("/api/v1/syncs/crm-news/errors")["errors"]
    assert errors, "crm.csv has rows without email"
    for issue in errors:
        assert pattern.match(issue["first_seen"]) and pattern.match(issue["last_seen"])


# parametrized at collection time, so from the document itself (the daemon serves the same one:
# test_the_daemon_serves_the_document_behind_the_token); the daemon's address comes at run time
#: the event stream never ends by itself: tests/test_console_events.py tests it
ENDLESS = "/api/v1/events"
schema = schemathesis.openapi.from_dict(document()).exclude(path=ENDLESS)
schema.config.generation.update(max_examples=MAX_EXAMPLES)
# a sync that exists, so that the examples reach past the 404 of an unknown name (random names
# are the state machine's and test_daemon_api.py's)
schema.config.update(parameters={"name": SYNC})


@schema.parametrize()
@hypothesis.settings(
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    # the same examples on every run: CI answers for this commit, not for a draw; a negative
    # example with a mutated query and the Authorization header put back by ``headers=`` was
    # reported as "accepted" now and then, which no run here could reproduce
    derandomize=True,
)
def test_the_api_answers_as_its_document_says(case: Any, api: DaemonProcess) -> None:
    # every check: no 5xx, status/content type/headers/body as documented, invalid input
    # refused, valid input accepted, 401 once the token is left out (ignored_auth)
    case.call_and_validate(base_url=base_url(api), headers=auth(api))


def test_the_api_holds_over_linked_sequences(api_schema: Any, api: DaemonProcess) -> None:
    headers = auth(api)

    class Machine(api_schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": headers}

    Machine.run(
        settings=hypothesis.settings(
            max_examples=STATEFUL_EXAMPLES,
            stateful_step_count=STATEFUL_STEPS,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
    )
