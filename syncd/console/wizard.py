"""Set up a sync in the browser: choose two apps, fill in each side's settings (a form made from
what the connector declares), the sync's settings, field mappings and IF/THEN rules; save it as
``syncs/NAME.toml`` (tomlkit: a person's comments and order survive), connect OAuth apps through
the console's Connect flow, preview the first merge as a dry run, then start syncing. Also edit,
disable and delete. Files stay the truth: every save is checked by ``syncd check``'s own code and
followed by a reload of the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any

from aiohttp import web

from syncd.config import SYNC_NAME
from syncd.config_errors import ConfigError
from syncd.config_files import load_toml
from syncd.config_write import (
    ChangedSinceOpened,
    NotWritable,
    apply,
    dumps,
    file_hash,
    keep_secret,
    pending_secret,
    read_document,
    reference,
    remove_sync,
    validate_sync,
    writable,
    write_sync,
)
from syncd.connector import Connector, NeedsReauth
from syncd.console import wizard_form
from syncd.console.service import AlreadyRunning, ShuttingDown
from syncd.console.web import (
    ConsoleError,
    checks_csrf,
    done,
    form,
    render,
    requires_session,
    state,
    sync_slot,
)
from syncd.contact import CANONICAL_FIELDS
from syncd.logs import get_logger
from syncd.redact import redact, redact_data

log = get_logger("syncd.console")

#: how long the connection check of one side may take before saving
CHECK_TIMEOUT = 60.0


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/new-sync", choose_apps, name="console.wizard_apps", allow_head=False)
    router.add_get("/new-sync/form", new_form, name="console.wizard_new", allow_head=False)
    router.add_post("/new-sync/form", save_new, name="console.wizard_save_new")
    router.add_get("/syncs/{name}/edit", edit_form, name="console.wizard_edit", allow_head=False)
    router.add_post("/syncs/{name}/edit", save_edit, name="console.wizard_save_edit")
    router.add_get("/syncs/{name}/setup", setup, name="console.wizard_setup", allow_head=False)
    router.add_post("/syncs/{name}/preview", preview, name="console.wizard_preview")
    router.add_post("/syncs/{name}/start", start, name="console.wizard_start")
    router.add_post("/syncs/{name}/disable", disable, name="console.wizard_disable")
    router.add_post("/syncs/{name}/enable", enable, name="console.wizard_enable")
    router.add_get(
        "/syncs/{name}/delete", delete_form, name="console.wizard_delete_form", allow_head=False
    )
    router.add_post("/syncs/{name}/delete", delete, name="console.wizard_delete")


# --- helpers --------------------------------------------------------------------------------


def _daemon(request: web.Request) -> Any:
    return state(request).daemon


def _connectors(request: web.Request) -> dict[str, type[Connector]]:
    return dict(sorted(_daemon(request).plugins.connectors.items()))


def _config_dir(request: web.Request) -> Path:
    return Path(_daemon(request).config_dir)


def _state_dir(request: web.Request) -> Path:
    return Path(_daemon(request).daemon_config.state_dir)


def _sync_path(request: web.Request, name: str) -> Path:
    if not SYNC_NAME.match(name):
        raise ConsoleError(404, f"There is no sync named {name!r}.")
    return _config_dir(request) / "syncs" / f"{name}.toml"


def _title(cls: type[Connector]) -> str:
    return cls.title or cls.name


def _field_names(cls: type[Connector]) -> list[str]:
    names = [spec.name for spec in cls.fields]
    return names


async def _reload(request: web.Request) -> str | None:
    try:
        await _daemon(request).reload("console")
    except ConfigError as exc:
        return redact(str(exc))
    return None


# --- choosing the apps ----------------------------------------------------------------------


@requires_session
async def choose_apps(request: web.Request) -> web.Response:
    connectors = _connectors(request)
    sources = {n: _title(c) for n, c in connectors.items() if c.capabilities.read}
    targets = {
        n: _title(c) + (" (write only)" if c.capabilities.write_only else "")
        for n, c in connectors.items()
    }
    return render(
        request,
        "wizard_apps.html",
        {
            "title": "New sync",
            "sources": sources,
            "targets": targets,
            "error": request.query.get("error", ""),
        },
    )


def _form_context(
    request: web.Request,
    name: str,
    classes: dict[str, type[Connector]],
    current: dict[str, Any],
    mappings: list[dict[str, str]],
    rules: list[dict[str, Any]],
    file_sha: str,
    new: bool,
    errors: dict[str, list[str]] | None = None,
    general: list[str] | None = None,
) -> dict[str, Any]:
    titles = {side: _title(cls) for side, cls in classes.items()}
    sides = {
        side: wizard_form.setting_fields(side, cls, dict(current.get(side, {}) or {}))
        for side, cls in classes.items()
    }
    defaults = {
        side: [(spec.name, spec.canonical) for spec in cls.fields if spec.canonical]
        for side, cls in classes.items()
    }
    by_canonical = {
        side: {canonical: name for name, canonical in defaults[side]} for side in classes
    }
    default_rows = [
        (by_canonical["a"].get(c), c, by_canonical["b"].get(c))
        for c in CANONICAL_FIELDS
        if by_canonical["a"].get(c) or by_canonical["b"].get(c)
    ]
    travels = (
        {c for a, c, b in default_rows if a and b}
        | {m.get("a", "") for m in mappings}
        | {m.get("b", "") for m in mappings}
    )
    unmapped = {
        side: [
            spec.name
            for spec in cls.fields
            if (spec.canonical not in travels) and spec.name not in travels
        ]
        for side, cls in classes.items()
    }
    while len(mappings) < wizard_form.MAPPING_SLOTS or mappings[-1].get("a"):
        mappings = [*mappings, {"a": "", "b": "", "direction": "two-way"}]
    rule_rows = [dict(r, sentence=wizard_form.sentence(r, titles)) for r in rules]
    while len(rule_rows) < wizard_form.RULE_SLOTS or rule_rows[-1].get("conditions"):
        rule_rows.append(
            {"direction": "a-to-b", "match": "all", "conditions": [], "actions": [], "sentence": ""}
        )
    top = {
        key: ("" if current.get(key) is None else str(current.get(key)))
        for key, _, _, _ in wizard_form.SYNC_SETTINGS
    }
    return {
        "title": "New sync" if new else f"Edit {name}",
        "name": name,
        "new": new,
        "connectors": {side: cls.name for side, cls in classes.items()},
        "titles": titles,
        "sides": sides,
        "sync_settings": wizard_form.SYNC_SETTINGS,
        "top": top,
        "default_rows": default_rows,
        "field_options": {side: _field_names(cls) for side, cls in classes.items()},
        "canonical": list(CANONICAL_FIELDS),
        "mappings": mappings,
        "unmapped": unmapped,
        "rules": rule_rows,
        "operators": wizard_form.OPERATORS,
        "actions": wizard_form.ACTIONS,
        "condition_slots": range(wizard_form.CONDITION_SLOTS),
        "action_slots": range(wizard_form.ACTION_SLOTS),
        "errors": errors or {},
        "general": general or [],
        "file_hash": file_sha,
        "writable": writable(_config_dir(request)),
        "toml": None,
    }


@requires_session
async def new_form(request: web.Request) -> web.Response:
    connectors = _connectors(request)
    name = request.query.get("name", "").strip()
    a, b = request.query.get("a", ""), request.query.get("b", "")
    problems = []
    if not SYNC_NAME.match(name):
        problems.append("A sync's name is letters, digits, '-', '_' or '.' (at most 64).")
    elif await asyncio.to_thread(os.path.lexists, _sync_path(request, name)):
        problems.append(f"There is a sync named {name} already: choose another name.")
    if a not in connectors or not connectors[a].capabilities.read:
        problems.append("Choose app a from the installed connectors that can be read.")
    if b not in connectors:
        problems.append("Choose app b from the installed connectors.")
    if problems:
        raise ConsoleError(400, " ".join(problems))
    classes = {"a": connectors[a], "b": connectors[b]}
    direction = "a-to-b" if connectors[b].capabilities.write_only else "two-way"
    current: dict[str, Any] = {"direction": direction, "interval": "10m"}
    return render(
        request,
        "wizard_form.html",
        _form_context(request, name, classes, current, [], [], "", True),
    )


def _classes_of(request: web.Request, data: dict[str, Any]) -> dict[str, type[Connector]]:
    connectors = _connectors(request)
    classes = {}
    for side in ("a", "b"):
        table = data.get(side, {})
        connector = table.get("connector") if isinstance(table, dict) else None
        if connector not in connectors:
            raise ConsoleError(400, f"Side {side}'s connector {connector!r} is not installed.")
        classes[side] = connectors[connector]
    return classes


@requires_session
async def edit_form(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    path = _sync_path(request, name)
    if not path.exists():
        raise ConsoleError(404, f"There is no sync file for {name!r}.")
    try:
        data = await asyncio.to_thread(load_toml, path)
        sha = await asyncio.to_thread(file_hash, path)
    except ConfigError as exc:
        raise ConsoleError(400, redact(str(exc))) from None
    classes = _classes_of(request, data)
    mappings, rules = wizard_form.rows_from_file(data)
    return render(
        request,
        "wizard_form.html",
        _form_context(request, name, classes, data, mappings, rules, sha, False),
    )


# --- saving ---------------------------------------------------------------------------------


async def _check_sides(config: Any, request: web.Request) -> dict[str, str]:
    """Each side's own connection check; a refusal by side key. An app that needs an OAuth
    authorisation is connected after saving (its missing tokens are no refusal)."""
    from syncd.engine.executor import make_connector

    problems: dict[str, str] = {}
    for side in ("a", "b"):
        cls = config.side(side).connector_class
        connector = make_connector(config, side, _daemon(request).store, dry_run=True)
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                await connector.open()
                await connector.check()
        except NeedsReauth as exc:
            if not cls.needs_authorization:  # OAuth apps are connected after saving
                problems[side] = redact(str(exc))
        except TimeoutError:
            problems[side] = (
                f"{_title(cls)} did not answer within {CHECK_TIMEOUT:.0f} seconds; check the "
                "address and try again"
            )
        except Exception as exc:
            problems[side] = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        finally:
            with contextlib.suppress(Exception):
                await connector.close()
    return problems


async def _save(request: web.Request, name: str, new: bool) -> web.StreamResponse:
    data = await form(request)
    path = _sync_path(request, name)
    expected = data.get("file_hash", "")
    try:
        doc = await asyncio.to_thread(read_document, path)
    except ConfigError as exc:
        raise ConsoleError(400, redact(str(exc))) from None
    if new:
        connectors = _connectors(request)
        classes = {}
        for side in ("a", "b"):
            connector = data.get(f"{side}.connector", "")
            if connector not in connectors:
                raise ConsoleError(400, f"Side {side}'s connector is not installed.")
            classes[side] = connectors[connector]
    else:
        classes = _classes_of(request, doc.unwrap())
    parsed = wizard_form.parse(data, classes, new)
    state_dir = _state_dir(request)
    pending: dict[tuple[str, str], Path] = {}
    for (side, key), value in parsed.secrets.items():
        pending[(side, key)] = await asyncio.to_thread(pending_secret, state_dir, value)

    def build(final: bool) -> str:
        import tomlkit  # here, not at import: see syncd/config_write.py

        sides = {side: dict(values) for side, values in parsed.sides.items()}
        for (side, key), temp in pending.items():
            where = keep_target(side, key) if final else temp
            sides[side][key] = reference(where)
        document = read_document(path) if path.exists() else tomlkit.document()
        apply(document, parsed.top, sides, parsed.fields, parsed.rules)
        return dumps(document)

    def keep_target(side: str, key: str) -> Path:
        from syncd.config_write import secret_path

        return secret_path(state_dir, name, side, key)

    errors: dict[str, list[str]] = {}
    general: list[str] = []
    try:
        text = await asyncio.to_thread(build, False)
        problems, config = await asyncio.to_thread(
            validate_sync,
            text,
            name,
            _daemon(request).plugins,
            _daemon(request).daemon_config,
            _config_dir(request),
        )
        for problem in problems:
            key = wizard_form.form_key(problem.key or "", parsed) if problem.key else ""
            if key:
                errors.setdefault(key, []).append(redact(problem.message))
            else:
                general.append(redact(problem.message))
        if config is not None:
            for side, refusal in (await _check_sides(config, request)).items():
                errors.setdefault(f"{side}.connector", []).append(refusal)
        if errors or general:
            return _again(request, name, classes, parsed, expected, new, errors, general, 400)
        text = await asyncio.to_thread(build, True)
        for (side, key), temp in pending.items():
            await asyncio.to_thread(keep_secret, temp, keep_target(side, key))
        pending.clear()
        if not writable(_config_dir(request)):
            context = _again_context(request, name, classes, parsed, expected, new, {}, [])
            context["toml"] = text
            context["path"] = str(path)
            return render(request, "wizard_form.html", context)
        try:
            await asyncio.to_thread(write_sync, path, text, expected)
        except ChangedSinceOpened:
            return _again(
                request,
                name,
                classes,
                parsed,
                expected,
                new,
                {},
                [
                    f"syncs/{name}.toml changed since you opened it (someone else saved it, or it "
                    "was edited by hand). Nothing was saved: open it again to see the new version."
                ],
                409,
            )
        except NotWritable:
            context = _again_context(request, name, classes, parsed, expected, new, {}, [])
            context["toml"] = text
            context["path"] = str(path)
            return render(request, "wizard_form.html", context)
    finally:
        for temp in pending.values():
            temp.unlink(missing_ok=True)
    log.info("sync saved from the console", sync=name, new=new)
    refused = await _reload(request)
    if refused:
        raise ConsoleError(400, f"Saved, but the daemon refused the config: {refused}")
    if new:
        raise web.HTTPSeeOther(state(request).url(f"/syncs/{name}/setup"))
    return done(request, f"Saved syncs/{name}.toml.", back=f"/syncs/{name}/setup")


def _again_context(
    request: web.Request,
    name: str,
    classes: dict[str, type[Connector]],
    parsed: wizard_form.Parsed,
    expected: str,
    new: bool,
    errors: dict[str, list[str]],
    general: list[str],
) -> dict[str, Any]:
    current: dict[str, Any] = dict(parsed.top)
    for side, values in parsed.sides.items():
        shown = dict(values)
        for key in classes[side].secret_settings():
            shown[key] = "stored" if not new else None
        current[side] = shown
    return _form_context(
        request,
        name,
        classes,
        current,
        parsed.mapping_rows,
        parsed.rule_rows,
        expected,
        new,
        errors,
        general,
    )


def _again(
    request: web.Request,
    name: str,
    classes: dict[str, type[Connector]],
    parsed: wizard_form.Parsed,
    expected: str,
    new: bool,
    errors: dict[str, list[str]],
    general: list[str],
    status: int,
) -> web.Response:
    context = _again_context(request, name, classes, parsed, expected, new, errors, general)
    return render(request, "wizard_form.html", context, status=status)


@requires_session
@checks_csrf
async def save_new(request: web.Request) -> web.StreamResponse:
    name = (await form(request)).get("name", "")
    if not SYNC_NAME.match(name):
        raise ConsoleError(400, "A sync's name is letters, digits, '-', '_' or '.' (at most 64).")
    return await _save(request, name, True)


@requires_session
@checks_csrf
async def save_edit(request: web.Request) -> web.StreamResponse:
    return await _save(request, request.match_info["name"], False)


# --- connect, preview, start ----------------------------------------------------------------


@requires_session
async def setup(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    slot = sync_slot(request, name)
    sides = state(request).service.sides(slot)
    return render(
        request,
        "wizard_setup.html",
        {
            "title": f"Set up {name}",
            "name": name,
            "sides": sides,
            "initial": slot.config.initial,
            "choices": wizard_form.INITIAL_CHOICES,
            "enabled": slot.config.enabled,
            "state": slot.state,
        },
    )


async def _set_top(request: web.Request, name: str, values: dict[str, Any]) -> None:
    path = _sync_path(request, name)

    def edit() -> None:
        sha = file_hash(path)
        doc = read_document(path)
        apply(doc, values, {}, None, None)
        write_sync(path, dumps(doc), sha)

    try:
        await asyncio.to_thread(edit)
    except (NotWritable, ChangedSinceOpened) as exc:
        raise ConsoleError(409, f"Could not change syncs/{name}.toml: {exc}") from None
    except ConfigError as exc:
        raise ConsoleError(400, redact(str(exc))) from None
    problem = await _reload(request)
    if problem:
        raise ConsoleError(400, f"The daemon refused the changed config: {problem}")


@requires_session
@checks_csrf
async def preview(request: web.Request) -> web.Response:
    from syncd.engine.executor import RunOptions, run_sync
    from syncd.run_json import result_json

    name = request.match_info["name"]
    initial = (await form(request)).get("initial", "")
    if initial not in [c[0] for c in wizard_form.INITIAL_CHOICES]:
        raise ConsoleError(400, "Choose how the first run merges.")
    slot = sync_slot(request, name)
    if slot.current is not None:
        raise ConsoleError(409, f"{name} is running; preview it when the run has finished.")
    if slot.config.initial != initial:
        await _set_top(request, name, {"initial": initial})
        slot = sync_slot(request, name)
    result = await run_sync(
        slot.config, _daemon(request).store, RunOptions(dry_run=True, trigger="console")
    )
    data = redact_data(result_json(result))
    sides = state(request).service.sides(slot)
    return render(
        request,
        "wizard_preview.html",
        {
            "title": f"Preview {name}",
            "name": name,
            "result": data,
            "sides": sides,
            "initial": initial,
            "choice": dict((c[0], c[1]) for c in wizard_form.INITIAL_CHOICES),
        },
    )


@requires_session
@checks_csrf
async def start(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    slot = sync_slot(request, name)
    if not slot.config.enabled:
        await _set_top(request, name, {"enabled": None})
    with contextlib.suppress(AlreadyRunning, ShuttingDown):
        await state(request).service.trigger(name)
    return done(request, f"Started syncing {name}.", back="/")


@requires_session
@checks_csrf
async def disable(request: web.Request) -> web.StreamResponse:
    return await _switch(request, enabled=False)


@requires_session
@checks_csrf
async def enable(request: web.Request) -> web.StreamResponse:
    return await _switch(request, enabled=True)


async def _switch(request: web.Request, enabled: bool) -> web.StreamResponse:
    """Enable (the file's ``enabled`` key removed: the default) or disable the sync."""
    name = request.match_info["name"]
    sync_slot(request, name)
    await _set_top(request, name, {"enabled": None if enabled else False})
    if enabled:
        return done(request, f"Enabled {name}.", back="/")
    return done(request, f"Disabled {name}: it does not run until it is enabled.", back="/")


@requires_session
async def delete_form(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    sync_slot(request, name)
    return render(request, "wizard_delete.html", {"title": f"Delete {name}", "name": name})


@requires_session
@checks_csrf
async def delete(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    keep = (await form(request)).get("links", "")
    if keep not in ("keep", "forget"):
        raise ConsoleError(400, "Choose whether to keep or forget the sync's links and history.")
    slot = sync_slot(request, name)
    if slot.current is not None:
        raise ConsoleError(409, f"{name} is running; delete it when the run has finished.")
    try:
        await asyncio.to_thread(remove_sync, _sync_path(request, name))
    except NotWritable as exc:
        raise ConsoleError(409, f"Could not remove syncs/{name}.toml: {exc}") from None
    problem = await _reload(request)
    if problem:
        raise ConsoleError(400, f"Removed, but the daemon refused the config: {problem}")
    if keep == "forget":
        store = _daemon(request).store
        await store.run(store.forget_sync, name)
    log.info("sync deleted from the console", sync=name, links=keep)
    words = (
        "its links and history are kept"
        if keep == "keep"
        else "its links and history were forgotten"
    )
    return done(request, f"Deleted {name}; {words}.", back="/")
