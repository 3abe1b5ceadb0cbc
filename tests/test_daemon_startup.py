"""What the daemon does not do at start-up, and its event loop's health (issue 19, "Daemon").

* Installed plugins are imported when a sync uses their connector (or something lists them),
  not by every ``syncd run``; their commands still work.
* The console's jinja2 and the OpenAPI document wait for the first request that needs them;
  psycopg waits for a PostgreSQL store (tests/test_pg_store.py opens those); tomlkit for the
  console's first sync file written, phonenumbers for the first number not in E.164; rich and
  greenlet (installed with test dependencies) are never imported by structlog.
* A finished run's engine, connectors and what they loaded are freed when the run ends, not at
  the collector's next full pass.
* After a run, the cyclic collector does not walk what the run made all at once on the event
  loop (the run's survivors go to the permanent generation, and back once the run is gone).
* The loop watch sees a callback that holds the loop, and ``GET /metrics`` shows it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
import textwrap
import time
import weakref
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from support import SYNCD, cli_env

from syncd.config import load_sync
from syncd.daemon.loopwatch import LoopWatch
from syncd.daemon.metrics import Metrics
from syncd.daemon.scheduler import SyncScheduler, thaw_after_run
from syncd.engine.executor import cyclic_gc_paused
from syncd.plugins import load_plugins
from syncd.store import Store
from syncd.testing import memory
from syncd.testing.daemon import DaemonProcess, free_port, write_daemon_config

#: the installed plugins' heavy modules, none of which a CSV-only daemon needs
PLUGIN_MODULES = (
    "syncd_xero.connector",
    "syncd_carddav.connector",
    "syncd_salesflare.connector",
    "syncd_salesfire.connector",
    "syncd_woodpecker.connector",
)


def run_python(code: str) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter (nothing imported yet); its last line of output,
    decoded as JSON."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    decoded: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return decoded


def csv_config(root: Path) -> Path:
    config = root / "config"
    write_daemon_config(config, f"127.0.0.1:{free_port()}", root / "state")
    (config / "syncs" / "files.toml").write_text(
        textwrap.dedent(
            f"""
            direction = "a-to-b"
            interval = "1h"
            [a]
            connector = "csv"
            path = "{root / "a.csv"}"
            [b]
            connector = "csv"
            path = "{root / "b.csv"}"
            """
        )
    )
    (root / "a.csv").write_text("email,first_name\nann@example.com,Ann\n")
    return config


# --- plugins ----------------------------------------------------------------------------------


def test_a_csv_only_config_imports_no_installed_plugin(tmp_path: Path) -> None:
    config = csv_config(tmp_path)
    found = run_python(
        f"""
        import json, sys
        from pathlib import Path
        from syncd.config import load_config
        from syncd.plugins import load_plugins
        plugins = load_plugins()
        load_config(Path({str(config)!r}), plugins)
        before = [m for m in {PLUGIN_MODULES!r} if m in sys.modules]
        xero = plugins.connector("xero")
        print(json.dumps({{
            "before": before,
            "xero": xero.__module__ if xero else None,
            "carddav_after_xero": "syncd_carddav.connector" in sys.modules,
            "all": sorted(plugins.connectors),
        }}))
        """
    )
    assert found["before"] == []
    # a connector's own entry point is imported alone, and listing imports the rest
    assert found["xero"] == "syncd_xero.connector"
    assert found["carddav_after_xero"] is False
    assert {"csv", "xero", "carddav", "salesflare", "salesfire", "woodpecker"} <= set(found["all"])


def test_a_connector_of_an_entry_point_with_another_name_is_still_found() -> None:
    # "thing" is no entry point's name: every installed plugin is imported to look for it
    found = run_python(
        """
        import json, sys
        from syncd.plugins import load_plugins
        plugins = load_plugins()
        missing = plugins.connector("no-such-connector")
        print(json.dumps({"missing": missing, "loaded": "syncd_xero.connector" in sys.modules}))
        """
    )
    assert found == {"missing": None, "loaded": True}


def test_a_plugins_command_works_although_plugins_load_late(tmp_path: Path) -> None:
    plugin = tmp_path / "hello_plugin.py"
    plugin.write_text(
        textwrap.dedent(
            """
            import click
            from syncd import hookimpl

            @hookimpl
            def register_commands(cli):
                @cli.command("hello")
                def hello():
                    "Say hello."
                    click.echo("hello from a plugin")
            """
        )
    )
    env = cli_env(SYNCD_PLUGIN_MODULES="hello_plugin", PYTHONPATH=str(tmp_path))
    said = subprocess.run([*SYNCD, "hello"], capture_output=True, text=True, env=env)
    assert said.returncode == 0, said.stderr
    assert said.stdout.strip() == "hello from a plugin"
    listed = subprocess.run([*SYNCD, "--help"], capture_output=True, text=True, env=env)
    assert "hello" in listed.stdout and "Say hello." in listed.stdout
    unknown = subprocess.run([*SYNCD, "no-such-command"], capture_output=True, text=True, env=env)
    assert unknown.returncode == 2 and "No such command" in unknown.stderr


# --- console and API: built when first asked for ---------------------------------------------


def test_the_api_is_built_without_jinja2_or_the_openapi_document(tmp_path: Path) -> None:
    config = csv_config(tmp_path)
    found = run_python(
        f"""
        import json, sys
        from pathlib import Path
        from syncd.config import load_config
        from syncd.daemon.api import make_app
        from syncd.daemon.service import Daemon
        from syncd.plugins import load_plugins
        plugins = load_plugins()
        daemon = Daemon(make_app, Path({str(config)!r}), plugins)
        daemon.config = load_config(Path({str(config)!r}), plugins)
        app = make_app(daemon)
        routes = len(app.router.routes())
        print(json.dumps({{
            "routes": routes,
            "jinja2": "jinja2" in sys.modules,
            "openapi": "syncd.daemon.openapi" in sys.modules,
            "psycopg": "psycopg" in sys.modules,
        }}))
        """
    )
    assert found["routes"] > 20
    # nor psycopg (libpq, OpenSSL: 10 MB) for an SQLite store
    assert found == {
        "routes": found["routes"],
        "jinja2": False,
        "openapi": False,
        "psycopg": False,
    }


#: imported by nothing an idle daemon does (each costs its memory; rich, greenlet: test deps)
IDLE_FREE_MODULES = ("tomlkit", "phonenumbers", "rich", "greenlet")


def test_the_daemon_and_the_cli_import_no_tomlkit_phonenumbers_rich_or_greenlet(
    tmp_path: Path,
) -> None:
    config = csv_config(tmp_path)
    sync = config / "syncs" / "files.toml"
    sync.write_text('phone_region = "US"\n' + sync.read_text())
    found = run_python(
        f"""
        import json, sys
        from importlib.util import find_spec
        from pathlib import Path
        import syncd.cli
        from syncd.config import load_config
        from syncd.contact import normalise_phone
        from syncd.daemon.api import make_app
        from syncd.daemon.service import Daemon
        from syncd.plugins import load_plugins
        plugins = load_plugins()
        daemon = Daemon(make_app, Path({str(config)!r}), plugins)
        daemon.config = load_config(Path({str(config)!r}), plugins)
        make_app(daemon)
        e164 = normalise_phone("+44 20 7946 0000", "GB")
        print(json.dumps({{
            "installed": [m for m in {IDLE_FREE_MODULES!r} if find_spec(m) is not None],
            "imported": [m for m in {IDLE_FREE_MODULES!r} if m in sys.modules],
            "region": daemon.config.syncs["files"].phone_region,
            "e164": e164,
        }}))
        """
    )
    # the test environment has them all (schemathesis brings rich, playwright greenlet)
    assert found["installed"] == list(IDLE_FREE_MODULES)
    assert found["imported"] == []
    assert found["region"] == "US"
    assert found["e164"] == "+442079460000"


def test_the_phone_regions_known_without_importing_the_library_are_the_librarys() -> None:
    import phonenumbers

    from syncd.config_values import phone_regions

    assert phone_regions() == frozenset(phonenumbers.SUPPORTED_REGIONS)
    assert "GB" in phone_regions() and "001" not in phone_regions()


def test_national_numbers_and_console_edits_still_load_what_they_need(tmp_path: Path) -> None:
    from syncd.config_write import apply, dumps, read_document
    from syncd.contact import normalise_phone

    assert normalise_phone("020 7946 0000", "GB") == "+442079460000"
    document = read_document(tmp_path / "new.toml")
    apply(document, {"direction": "a-to-b"}, {"a": {"connector": "csv"}}, None, None)
    assert dumps(document) == 'direction = "a-to-b"\n\n[a]\nconnector = "csv"\n'


def test_the_first_console_page_and_the_openapi_document_are_served(tmp_path: Path) -> None:
    config = csv_config(tmp_path)
    listen = (config / "syncd.toml").read_text().split('listen = "')[1].split('"')[0]
    with DaemonProcess(config, tmp_path / "state", listen) as daemon:
        daemon.wait_ready()
        client = daemon.client(token=None)
        status, page = client.request("GET", "/signin", auth=False)
        assert status == 200 and "<form" in page
        document = daemon.get("/api/v1/openapi.json")
        assert document["openapi"].startswith("3.")
        assert daemon.stop() == 0


# --- the collector after a run ----------------------------------------------------------------


def test_a_runs_survivors_skip_the_collectors_first_pass_and_come_back_later() -> None:
    assert gc.isenabled()
    before = gc.get_freeze_count()  # other tests' runs in this process (no daemon thaws them)
    with cyclic_gc_paused():
        survivors = [[i] for i in range(50_000)]  # what a run holds when it ends
    try:
        # still alive, and not in the young generation that the next collection walks
        assert gc.get_freeze_count() >= before + 50_000
        assert gc.isenabled()
        thaw_after_run()
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()
    assert len(survivors) == 50_000


def test_nothing_is_thawed_while_another_run_keeps_the_collector_paused() -> None:
    with cyclic_gc_paused():
        with cyclic_gc_paused():
            pass
        assert not gc.isenabled()
        thaw_after_run()  # a run is still going: it leaves the collector alone
        assert not gc.isenabled()
    assert gc.isenabled()
    thaw_after_run()
    assert gc.get_freeze_count() == 0


# --- the loop watch ---------------------------------------------------------------------------


def hold_the_loop(cpu_seconds: float) -> None:
    """Compute on the calling thread for ``cpu_seconds`` of its CPU time."""
    until = time.thread_time() + cpu_seconds
    while time.thread_time() < until:
        pass


def test_the_loop_watch_sees_a_callback_that_holds_the_loop() -> None:
    async def scenario() -> LoopWatch:
        watch = LoopWatch(CollectorRegistry(), interval=0.01)
        task = asyncio.create_task(watch.run_forever())
        await asyncio.sleep(0)  # the watch is asleep now
        hold_the_loop(0.3)
        for _ in range(1000):
            if watch.largest_busy:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        return watch

    watch = asyncio.run(scenario())
    # late by at least the CPU time the callback took less the 0.01 s the watch asked to sleep
    # (its wake-up was due then), and all of it was the loop computing
    assert watch.largest >= 0.3 - 0.01
    assert watch.largest_busy >= 0.25


def test_metrics_show_the_event_loop_lag(tmp_path: Path) -> None:
    config = csv_config(tmp_path)
    listen = (config / "syncd.toml").read_text().split('listen = "')[1].split('"')[0]
    with DaemonProcess(config, tmp_path / "state", listen) as daemon:
        daemon.wait_ready()
        client = daemon.client()

        def watched() -> str | None:
            text = client.request("GET", "/metrics")[1]
            count = text.split("syncd_event_loop_lag_seconds_count ")[1].split()[0]
            return text if float(count) > 0 else None

        from syncd.testing.daemon import wait_until

        text = wait_until(watched, 60, "the loop watch's first wake-up")
        for name in (
            "syncd_event_loop_lag_seconds_bucket",
            "syncd_event_loop_lag_max_seconds",
            "syncd_event_loop_busy_seconds_bucket",
            "syncd_event_loop_busy_max_seconds",
        ):
            assert name in text
        assert daemon.stop() == 0


# --- memory given back after a run ------------------------------------------------------------


def test_freed_heap_goes_back_to_the_system() -> None:
    found = run_python(
        """
        import json, psutil
        from syncd.daemon.memory import limit_arenas, trim
        limited = limit_arenas()
        rss = lambda: psutil.Process().memory_info().rss / 2**20
        blocks = [bytes(2000) + bytes([i % 256]) for i in range(100_000)]  # 200 MB via malloc
        pinned = bytes(2000)  # above them on the heap: free() alone cannot shrink it
        full = rss()
        del blocks
        freed = rss()
        trimmed = trim()
        print(json.dumps({"limited": limited, "trimmed": trimmed, "full": full,
                          "freed": freed, "after": rss()}))
        """
    )
    assert found["limited"] and found["trimmed"]
    assert found["full"] > 150
    assert found["after"] < found["freed"] - 100, found


# --- what a finished run leaves -------------------------------------------------------------


async def test_a_finished_runs_engine_is_freed_without_the_collector(
    tmp_path: Path, store: Store
) -> None:
    plugins = load_plugins(extra=[memory])
    app = memory.app("released-a")
    for i in range(3):
        app.add({"email": f"p{i}@example.com", "first_name": f"P{i}"})
    path = tmp_path / "config" / "syncs" / "one.toml"
    path.parent.mkdir(parents=True)
    path.write_text(
        textwrap.dedent(
            """
            direction = "a-to-b"
            interval = "1h"
            [a]
            connector = "memory"
            account = "released-a"
            [b]
            connector = "memory"
            account = "released-b"
            """
        )
    )
    scheduler = SyncScheduler(store, Metrics())
    await scheduler.start({"one": load_sync(path, plugins)})
    scheduler._scheduler.pause()  # only the run the test starts
    try:
        handle = await scheduler.trigger("one")
        assert handle.engine is not None and handle.task is not None
        engine = weakref.ref(handle.engine)
        gc.disable()  # whatever frees the engine, it is not the cyclic collector
        try:
            await handle.task
            assert engine() is None
        finally:
            gc.enable()
        assert handle.run_id is not None
        assert scheduler.progress_of(handle)["listed"] == 3
        assert scheduler.slots["one"].last is not None
        assert scheduler.slots["one"].last.outcome == "success"
    finally:
        await scheduler.drain(5.0, 1.0)
