"""Edit one contact in a demo emulator, as a person would in the app, to watch it travel.

    . .demo/env
    python config/demo/edit.py xero jane.smith@acme.example LastName=Smith-Jones
    python config/demo/edit.py salesflare jane.smith@acme.example lastname=Smith-Jones

Xero's real API needs an OAuth login, so the Xero edit goes through the emulator's own control
route (``POST /_sandbox/xero/contacts``), which changes the contact as an edit in Xero would.
The Salesflare edit uses Salesflare's own API (``PUT /contacts/{id}``) with the demo's API key.
The addresses and the key come from the environment that ``. .demo/env`` sets.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

# run.py beside this file is the demo itself; its HTTP helper serves both
from run import http as _call


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        sys.exit(f"error: ${name} is not set: run `. .demo/env` first (while `make demo` runs)")
    return value


def edit_xero(email: str, changes: dict[str, str]) -> str:
    url = _env("DEMO_XERO_URL")
    contacts = _call("GET", f"{url}/_sandbox/xero/contacts")["Contacts"]
    found = [
        c
        for c in contacts
        if str(c.get("EmailAddress") or "").strip().lower() == email
        and c.get("ContactStatus") == "ACTIVE"
    ]
    if len(found) != 1:
        sys.exit(f"error: Xero has {len(found)} active contacts with the email {email}")
    contact_id = found[0]["ContactID"]
    _call(
        "POST",
        f"{url}/_sandbox/xero/contacts",
        {"Contacts": [{"ContactID": contact_id, **changes}]},
    )
    return f"Xero contact {found[0].get('Name')!r} ({email})"


def edit_salesflare(email: str, changes: dict[str, str]) -> str:
    url, key = _env("DEMO_SALESFLARE_URL"), _env("SALESFLARE_API_KEY")
    query = urllib.parse.urlencode({"email": email, "limit": "10"})
    found = [
        c
        for c in _call("GET", f"{url}/contacts?{query}", token=key)
        if str(c.get("email") or "").strip().lower() == email and not c.get("archived")
    ]
    if len(found) != 1:
        sys.exit(f"error: Salesflare has {len(found)} contacts with the email {email}")
    _call("PUT", f"{url}/contacts/{found[0]['id']}", changes, token=key)
    return f"Salesflare contact {found[0].get('name')!r} ({email})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("app", choices=("xero", "salesflare"))
    parser.add_argument("email")
    parser.add_argument("changes", nargs="+", metavar="FIELD=VALUE")
    args = parser.parse_args()
    changes: dict[str, str] = {}
    for item in args.changes:
        field, sep, value = item.partition("=")
        if not sep or not field:
            parser.error(f"expected FIELD=VALUE, got {item!r}")
        changes[field] = value
    email = args.email.strip().lower()
    try:
        what = (edit_xero if args.app == "xero" else edit_salesflare)(email, changes)
    except (OSError, urllib.error.URLError) as exc:
        sys.exit(f"error: the {args.app} emulator did not answer ({exc}); is `make demo` running?")
    shown = ", ".join(f"{k} = {v!r}" for k, v in changes.items())
    print(f"edited {what}: {shown}")
    print("syncd picks it up on its next run; `syncd trigger xero-salesflare` runs it now")
    return 0


if __name__ == "__main__":
    sys.exit(main())
