"""``syncd explain SYNC EMAIL_OR_ID [--live] [--json]``: "why did this contact not sync?" from the
command line (:mod:`syncd.explain`; the API's ``GET /api/v1/syncs/{name}/explain`` twin).

It reads the state directory itself, as ``syncd errors`` does (no daemon needed); ``--live``
asks both apps for the contact's current values through the connectors.

Exit status: 0 the contact is known and explained; 1 syncd knows no such contact; 2 a usage or
config error (an unknown sync, an empty query).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping
from typing import Any

import click

from syncd.cli_output import table
from syncd.config import ConfigError
from syncd.explain import ExplainError, explain_contact
from syncd.redact import redact, redact_data

EXIT_OK, EXIT_UNKNOWN, EXIT_USAGE = 0, 1, 2


def explanation_lines(result: Mapping[str, Any]) -> list[str]:
    """The human output: the query, then per contact its verdict, its records and live values."""
    last = result.get("last_run")
    as_of = f" (as of run {last['id']}, {last['outcome']})" if last else " (no run yet)"
    lines = [f"{result['query']} in {result['sync']}{as_of}"]
    if not result["contacts"]:
        lines.append(f"  {result['summary']}")
    for contact in result["contacts"]:
        summary = contact["summary"]
        lines.append(f"  {summary[:1].upper()}{summary[1:]}")
        rows = []
        for side in ("a", "b"):
            info = contact["sides"][side]
            rows.append([f"side {side}", info["app"], info["record_id"] or "-"])
        lines += ["    " + line for line in table(rows)]
        if contact.get("live"):
            lines += ["    " + line for line in live_lines(contact["live"], result["apps"])]
    for contact in result.get("contacts_live") or ():
        lines += ["  live values:"]
        lines += ["    " + line for line in live_lines(contact["live"], result["apps"])]
    if result.get("more"):
        lines.append(f"  … and {result['more']} more")
    return lines


def live_lines(live: Mapping[str, Any], apps: Mapping[str, str]) -> list[str]:
    sides = live["sides"]
    notes = []
    for side in ("a", "b"):
        info = sides.get(side) or {}
        if info.get("error"):
            notes.append(f"side {side}: {info['error']}")
        elif not info.get("found"):
            notes.append(f"side {side} ({apps[side]}): no such record now")
    rows = [
        [
            "≠" if row["differs"] else " ",
            row["key"],
            row["a"] or "-",
            row["b"] or "-",
        ]
        for row in live["fields"]
        if row["a"] or row["b"]
    ]
    header = [" ", "FIELD", f"A ({apps['a']})", f"B ({apps['b']})"]
    if any(row[0] != " " for row in rows):
        notes.insert(0, "≠ marks the fields whose values differ")
    return [*table(rows, header), *notes]


@click.command("explain")
@click.argument("sync_name", metavar="SYNC")
@click.argument("query", metavar="EMAIL_OR_ID")
@click.option("--live", is_flag=True, help="Also fetch the current values from both apps.")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
@click.pass_obj
def explain_command(obj: Any, sync_name: str, query: str, live: bool, as_json: bool) -> None:
    """Why did this contact not sync? Where it is on each side and what syncd decided last.

    EMAIL_OR_ID is an email address (either side) or a record id (either side). Exit status 0
    when the contact is known, 1 when syncd knows no such contact, 2 on a usage error.
    """
    try:
        sync = obj.config().sync(sync_name)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(f"error: {redact(problem.line())}", err=True)
        sys.exit(EXIT_USAGE)
    store = obj.store()

    async def explained() -> dict[str, Any]:
        try:
            return await explain_contact(store, sync, query, live=live)
        finally:
            await store.aclose()

    try:
        result = asyncio.run(explained())
    except ExplainError as exc:
        click.echo(f"error: {redact(str(exc))}", err=True)
        sys.exit(EXIT_USAGE)
    if as_json:
        click.echo(json.dumps(redact_data(result), indent=2, sort_keys=True, default=str))
    else:
        for line in explanation_lines(result):
            click.echo(redact(line))
    sys.exit(EXIT_OK if result["found"] else EXIT_UNKNOWN)
