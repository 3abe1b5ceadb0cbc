"""The console's parts on their own: sessions, codes, the throttle, the event hub, its settings,
and that its templates and assets are package data (so they land in the wheel)."""

from __future__ import annotations

import asyncio
import fnmatch
import json
import os
import stat
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.config import ConfigError, load_daemon_config
from syncd.console.sessions import Sessions, SignInCodes, Throttle
from syncd.console.web import safe_next
from syncd.daemon.events import QUEUE, EventHub
from syncd.redact import register_secret

ROOT = Path(__file__).resolve().parents[1]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


# --- sessions -----------------------------------------------------------------------------------


async def test_a_session_expires_after_its_lifetime(tmp_path: Path) -> None:
    clock = Clock()
    sessions = Sessions(tmp_path / "s.json", lifetime=3600, clock=clock)
    cookie, session = await sessions.create("token-1234567890")
    assert sessions.get(cookie, "token-1234567890") is session
    clock.now += 3599
    assert sessions.get(cookie, "token-1234567890") is session
    clock.now += 2
    assert sessions.get(cookie, "token-1234567890") is None
    assert len(sessions) == 0


async def test_sessions_are_kept_hashed_and_reloaded_but_not_for_another_token(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.json"
    clock = Clock()
    first = Sessions(path, lifetime=3600, clock=clock)
    cookie, session = await first.create("token-1234567890")
    text = path.read_text()
    assert cookie not in text and "token-1234567890" not in text
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    second = Sessions(path, lifetime=3600, clock=clock)
    second.load()
    again = second.get(cookie, "token-1234567890")
    assert again is not None and again.csrf == session.csrf
    assert second.get(cookie, "another-token-0987654321") is None
    # an expired one is not loaded, and ending one removes it from the file
    third = Sessions(path, lifetime=3600, clock=clock)
    third.load()
    ended = third.get(cookie, "token-1234567890")
    assert ended is not None
    await third.end(ended)
    assert json.loads(path.read_text())["sessions"] == []


def test_an_unreadable_sessions_file_signs_everyone_out_without_failing(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text("{not json")
    sessions = Sessions(path, lifetime=60)
    sessions.load()
    assert len(sessions) == 0


@given(st.text(max_size=300))
def test_no_made_up_cookie_is_a_session(cookie: str) -> None:
    sessions = Sessions(None, lifetime=60)
    assert sessions.get(cookie, "token-1234567890") is None


def test_a_sign_in_code_is_good_once_and_only_for_its_lifetime() -> None:
    clock = Clock()
    codes = SignInCodes(lifetime=120, clock=clock)
    one, two = codes.issue(), codes.issue()
    assert one != two
    assert codes.redeem(one) is True
    assert codes.redeem(one) is False
    clock.now += 121
    assert codes.redeem(two) is False
    assert codes.redeem("") is False


def test_the_throttle_holds_an_address_after_five_failures_within_a_minute() -> None:
    clock = Clock()
    throttle = Throttle(failures=5, window=60, clock=clock)
    for _ in range(4):
        throttle.failed("192.0.2.1")
        clock.now += 1
    assert throttle.wait("192.0.2.1") == 0
    throttle.failed("192.0.2.1")
    assert throttle.wait("192.0.2.1") == pytest.approx(56)
    assert throttle.wait("192.0.2.2") == 0
    clock.now += 56
    assert throttle.wait("192.0.2.1") == 0
    throttle.failed("192.0.2.2")
    throttle.succeeded("192.0.2.2")
    assert throttle.wait("192.0.2.2") == 0


@pytest.mark.parametrize(
    ("given_path", "kept"),
    [
        ("/plugins", "/plugins"),
        ("/syncs/a?x=1", "/syncs/a?x=1"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("/a\nSet-Cookie: x", "/"),
        ("", "/"),
        (None, "/"),
    ],
)
def test_a_next_path_is_always_local(given_path: str | None, kept: str) -> None:
    assert safe_next(given_path) == kept


# --- the event hub ------------------------------------------------------------------------------


async def test_subscribers_get_every_event_and_a_reconnect_gets_what_it_missed() -> None:
    hub = EventHub(replay=10)
    live = hub.subscribe()
    first = hub.publish("run.started", {"sync": "a", "run_id": 1})
    hub.publish("run.finished", {"sync": "a", "run_id": 1})
    assert [(await live.get(1)).kind for _ in range(2)] == ["run.started", "run.finished"]
    late = hub.subscribe(last_event_id=first.id)
    got = await late.get(1)
    assert got is not None and got.kind == "run.finished"
    assert first.sse().startswith(b"id: 1\nevent: run.started\ndata: {")
    hub.close()
    assert await live.get(1) is None


async def test_a_subscriber_that_does_not_keep_up_is_dropped_not_the_daemon() -> None:
    hub = EventHub()
    slow = hub.subscribe()
    for n in range(QUEUE + 5):
        hub.publish("run.progress", {"sync": "a", "written": n})
    assert slow.dropped and hub.subscribers == 0
    events = []
    while True:
        event = await asyncio.wait_for(slow.get(), 1)
        if event is None:
            break
        events.append(event)
    assert len(events) < QUEUE  # it ends, and reconnects with Last-Event-ID


def test_an_event_never_carries_a_secret() -> None:
    register_secret("event-secret-44c1a9b0")
    hub = EventHub()
    event = hub.publish("error", {"sync": "a", "message": "refused key event-secret-44c1a9b0"})
    assert "event-secret-44c1a9b0" not in event.sse().decode()


# --- settings -----------------------------------------------------------------------------------


def write_api(tmp_path: Path, body: str) -> Path:
    (tmp_path / "syncd.toml").write_text("[api]\n" + body)
    return tmp_path


def test_the_console_settings_and_their_defaults(tmp_path: Path) -> None:
    default = load_daemon_config(write_api(tmp_path, ""))
    assert (default.api_base_path, default.api_trust_proxy, default.session_lifetime) == (
        "",
        False,
        7 * 86400,
    )
    config = load_daemon_config(
        write_api(tmp_path, 'base_path = "/syncd/"\ntrust_proxy = true\nsession_lifetime = "12h"\n')
    )
    assert config.api_base_path == "/syncd"
    assert config.api_trust_proxy is True
    assert config.session_lifetime == 12 * 3600


@pytest.mark.parametrize(
    ("body", "key", "words"),
    [
        ('base_path = "syncd"', "api.base_path", "expected a path such as '/syncd'"),
        ('base_path = "/a b"', "api.base_path", "expected a path"),
        ('base_path = "/x/../y"', "api.base_path", "expected a path"),
        ('trust_proxy = "yes"', "api.trust_proxy", "expected true or false"),
        ('session_lifetime = "1s"', "api.session_lifetime", ""),
        ("base_paht = 1", "api.base_paht", "unknown key"),
    ],
)
def test_a_bad_console_setting_names_its_key(
    tmp_path: Path, body: str, key: str, words: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_daemon_config(write_api(tmp_path, body + "\n"))
    assert key in str(caught.value) and words in str(caught.value)


def test_every_template_and_asset_is_package_data() -> None:
    """They must land in the wheel: pyproject's package-data patterns cover each file."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = data["tool"]["setuptools"]["package-data"]["syncd"]
    console = ROOT / "syncd" / "console"
    files = [p for d in ("templates", "static") for p in (console / d).rglob("*") if p.is_file()]
    assert files
    for path in files:
        relative = str(path.relative_to(ROOT / "syncd"))
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative
