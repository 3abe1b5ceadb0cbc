"""The rest of the spec's Contacts operations: one contact by ContactID or ContactNumber, the
one-contact update, attachments, CIS settings, history and notes, and contact groups.

The connector only lists and writes in bulk (``sandbox_accounting``); these are here so that a
client written from the spec (an official SDK, a user's script) finds every Contacts operation of
``xero_accounting.yaml`` (``getContact``, ``getContactByContactNumber``, ``updateContact``,
``getContactAttachments``, ``getContactAttachmentById``, ``getContactAttachmentByFileName``,
``createContactAttachmentByFileName``, ``updateContactAttachmentByFileName``,
``getContactCISSettings``, ``getContactHistory``, ``createContactHistory``, and the
``ContactGroups`` operations).

Behaviours the spec leaves open, emulated as follows (the README's Fidelity table says the same):

* ``GET /Contacts/{ContactID}`` and ``GET /Contacts/{ContactNumber}`` share one path: a value that
  is the ContactID of a contact finds it, anything else is looked up as a ContactNumber. Archived
  contacts are found too (a single fetch is not filtered). Unknown: 404.
* ``POST /Contacts/{ContactID}`` updates that contact with the first element of ``Contacts``; an
  unknown ContactID is a 404.
* Attachments: ``PUT`` adds a file (a second file of the same name is stored beside it, as Xero
  does for attachments), ``POST`` replaces the file of that name. Downloads answer the bytes as
  ``application/octet-stream`` (the spec's only content type for them).
* History: only the notes written with ``PUT .../History`` (Xero also lists its own "Created" and
  "Edited" records: not emulated).
* CIS settings: every contact is "not a CIS subcontractor" (``CISEnabled: false``), the answer for
  an organisation outside the UK's Construction Industry Scheme.
* Contact groups: only ACTIVE groups are listed; ``Status: DELETED`` deletes one. Membership shows
  in each contact's ``ContactGroups``.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from syncd_xero.sandbox_accounting import (
    API_PREFIX,
    ORG_KEY,
    Accounting,
    _api_exception,
    _envelope,
    write,
)
from syncd_xero.sandbox_data import Org, msdate, render
from syncd_xero.sandbox_errors import not_found


@dataclass
class Attachment:
    attachment_id: str
    file_name: str
    mime_type: str
    content: bytes

    def public(self, contact_id: str) -> dict[str, Any]:
        return {
            "AttachmentID": self.attachment_id,
            "FileName": self.file_name,
            "Url": f"https://api.xero.com{API_PREFIX}/Contacts/{contact_id}/Attachments/"
            f"{self.file_name}",
            "MimeType": self.mime_type,
            "ContentLength": len(self.content),
        }


@dataclass
class Extras:
    """What an organisation holds beside its contacts (by tenant, then by id)."""

    attachments: dict[str, dict[str, list[Attachment]]] = field(default_factory=dict)
    history: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    groups: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _find(org: Org, ref: str) -> dict[str, Any] | None:
    contact = org.contacts.get(ref) or org.contacts.get(ref.lower())
    if contact is not None:
        return contact
    return org.number_holder(ref, None) if ref else None


async def _json(request: web.Request) -> Any:
    try:
        return json.loads(await request.read() or b"null")
    except ValueError:
        return None


def _now() -> str:
    return msdate(int(time.time() * 1000), with_offset=False)


def routes(accounting: Accounting) -> web.RouteTableDef:
    table = web.RouteTableDef()
    extras = Extras()
    one = API_PREFIX + "/Contacts/{ref}"

    def contact_of(request: web.Request, key: str = "ref") -> dict[str, Any]:
        contact = _find(request[ORG_KEY], request.match_info[key])
        if contact is None:
            raise web.HTTPNotFound()
        return contact

    @table.get(one)
    async def get_contact(request: web.Request) -> web.Response:
        contact = contact_of(request)
        shown = render(contact, paged=True, with_offset=accounting.msdate_offset)
        return web.json_response(_envelope(accounting, [shown]))

    @table.post(one)
    async def update_contact(request: web.Request) -> web.Response:
        ref = request.match_info["ref"]
        if not _is_uuid(ref) or _find(request[ORG_KEY], ref) is None:
            return not_found()
        contact_id = str(contact_of(request)["ContactID"])
        return await write(accounting, request, allow_update=True, contact_id=contact_id)

    # --- attachments -------------------------------------------------------------------------

    def files(request: web.Request, contact_id: str) -> list[Attachment]:
        org = request[ORG_KEY]
        return extras.attachments.setdefault(org.tenant_id, {}).setdefault(contact_id, [])

    @table.get(one + "/Attachments")
    async def list_attachments(request: web.Request) -> web.Response:
        contact_id = str(contact_of(request)["ContactID"])
        shown = [a.public(contact_id) for a in files(request, contact_id)]
        return web.json_response({"Attachments": shown})

    @table.get(one + "/Attachments/{file}")
    async def get_attachment(request: web.Request) -> web.Response:
        contact_id = str(contact_of(request)["ContactID"])
        wanted = request.match_info["file"]
        held = files(request, contact_id)
        found = next((a for a in held if a.attachment_id == wanted.lower()), None)
        found = found or next((a for a in reversed(held) if a.file_name == wanted), None)
        if found is None:
            return not_found()
        return web.Response(body=found.content, content_type="application/octet-stream")

    async def upload(request: web.Request, replace: bool) -> web.Response:
        contact_id = str(contact_of(request)["ContactID"])
        name = request.match_info["file"]
        content = await request.read()
        if not content:
            return _api_exception(10, "ValidationException", "The attachment is empty")
        held = files(request, contact_id)
        if replace:
            held[:] = [a for a in held if a.file_name != name]
        mime = request.headers.get("Content-Type", "application/octet-stream").split(";")[0]
        attachment = Attachment(str(uuid.uuid4()), name, mime, content)
        held.append(attachment)
        return web.json_response({"Attachments": [attachment.public(contact_id)]})

    @table.put(one + "/Attachments/{file}")
    async def create_attachment(request: web.Request) -> web.Response:
        return await upload(request, replace=False)

    @table.post(one + "/Attachments/{file}")
    async def update_attachment(request: web.Request) -> web.Response:
        return await upload(request, replace=True)

    # --- CIS settings, history ---------------------------------------------------------------

    @table.get(one + "/CISSettings")
    async def cis_settings(request: web.Request) -> web.Response:
        contact_of(request)
        return web.json_response({"CISSettings": [{"CISEnabled": False}]})

    def notes(request: web.Request, contact_id: str) -> list[dict[str, Any]]:
        org = request[ORG_KEY]
        return extras.history.setdefault(org.tenant_id, {}).setdefault(contact_id, [])

    @table.get(one + "/History")
    async def get_history(request: web.Request) -> web.Response:
        contact_id = str(contact_of(request)["ContactID"])
        return web.json_response({"HistoryRecords": list(notes(request, contact_id))})

    @table.put(one + "/History")
    async def add_history(request: web.Request) -> web.Response:
        contact_id = str(contact_of(request)["ContactID"])
        body = await _json(request)
        records = body.get("HistoryRecords") if isinstance(body, dict) else None
        if not isinstance(records, list) or not records:
            return _api_exception(14, "PostDataInvalidException", "Expected a HistoryRecords array")
        made = []
        for record in records:
            details = record.get("Details") if isinstance(record, dict) else None
            if not isinstance(details, str) or not details.strip():
                return _api_exception(10, "ValidationException", "Details cannot be empty")
            if len(details) > 2500:
                return _api_exception(
                    10, "ValidationException", "Details must not be more than 2500 characters"
                )
            made.append(
                {"Changes": "Note", "DateUTC": _now(), "User": "Sandbox API", "Details": details}
            )
        notes(request, contact_id).extend(made)
        return web.json_response({"HistoryRecords": made})

    # --- contact groups ----------------------------------------------------------------------

    def groups(request: web.Request) -> dict[str, dict[str, Any]]:
        return extras.groups.setdefault(request[ORG_KEY].tenant_id, {})

    def group_of(request: web.Request) -> dict[str, Any]:
        group = groups(request).get(request.match_info["group"].lower())
        if group is None or group["Status"] != "ACTIVE":
            raise web.HTTPNotFound()
        return group

    def members(request: web.Request, group: dict[str, Any]) -> list[dict[str, Any]]:
        org = request[ORG_KEY]
        shown = []
        for contact in org.contacts.values():
            if any(g["ContactGroupID"] == group["ContactGroupID"] for g in _groups_of(contact)):
                shown.append({"ContactID": contact["ContactID"], "Name": contact["Name"]})
        return shown

    def public(group: dict[str, Any], contacts: list[dict[str, Any]] | None) -> dict[str, Any]:
        shown = {k: group[k] for k in ("ContactGroupID", "Name", "Status")}
        shown["HasValidationErrors"] = False
        if contacts is not None:
            shown["Contacts"] = contacts
        return shown

    def name_taken(request: web.Request, name: str, except_id: str | None) -> bool:
        return any(
            g["Name"].casefold() == name.casefold() and g["ContactGroupID"] != except_id
            for g in groups(request).values()
            if g["Status"] == "ACTIVE"
        )

    def group_payload(body: Any) -> list[dict[str, Any]] | None:
        items = body.get("ContactGroups") if isinstance(body, dict) else None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            return None
        return items

    @table.get(API_PREFIX + "/ContactGroups")
    async def list_groups(request: web.Request) -> web.Response:
        shown = [public(g, None) for g in groups(request).values() if g["Status"] == "ACTIVE"]
        shown.sort(key=lambda g: str(g["Name"]).casefold())
        return web.json_response({"ContactGroups": shown})

    @table.put(API_PREFIX + "/ContactGroups")
    async def create_groups(request: web.Request) -> web.Response:
        items = group_payload(await _json(request))
        if items is None:
            return _api_exception(14, "PostDataInvalidException", "Expected a ContactGroups array")
        made = []
        for item in items:
            name = str(item.get("Name") or "").strip()
            if not name:
                return _api_exception(10, "ValidationException", "Name cannot be empty")
            if len(name) > 50:
                return _api_exception(
                    10, "ValidationException", "Name must not be more than 50 characters"
                )
            if name_taken(request, name, None):
                return _api_exception(
                    10, "ValidationException", f"The contact group name {name} is already in use"
                )
            group = {"ContactGroupID": str(uuid.uuid4()), "Name": name, "Status": "ACTIVE"}
            groups(request)[group["ContactGroupID"]] = group
            made.append(public(group, None))
        return web.json_response({"ContactGroups": made})

    group_path = API_PREFIX + "/ContactGroups/{group}"

    @table.get(group_path)
    async def get_group(request: web.Request) -> web.Response:
        group = group_of(request)
        return web.json_response({"ContactGroups": [public(group, members(request, group))]})

    @table.post(group_path)
    async def update_group(request: web.Request) -> web.Response:
        group = group_of(request)
        items = group_payload(await _json(request))
        if not items:
            return _api_exception(14, "PostDataInvalidException", "Expected a ContactGroups array")
        item = items[0]
        name = item.get("Name")
        if name is not None:
            name = str(name).strip()
            if not name:
                return _api_exception(10, "ValidationException", "Name cannot be empty")
            if name_taken(request, name, group["ContactGroupID"]):
                return _api_exception(
                    10, "ValidationException", f"The contact group name {name} is already in use"
                )
            group["Name"] = name
        status = item.get("Status")
        if status is not None:
            if status not in ("ACTIVE", "DELETED"):
                return _api_exception(10, "ValidationException", "Status must be ACTIVE or DELETED")
            group["Status"] = status
            if status == "DELETED":
                for contact in request[ORG_KEY].contacts.values():
                    _leave(contact, group["ContactGroupID"])
        for contact in request[ORG_KEY].contacts.values():
            for held in _groups_of(contact):
                if held["ContactGroupID"] == group["ContactGroupID"]:
                    held["Name"] = group["Name"]
        return web.json_response({"ContactGroups": [public(group, None)]})

    @table.put(group_path + "/Contacts")
    async def add_members(request: web.Request) -> web.Response:
        group = group_of(request)
        body = await _json(request)
        items = body.get("Contacts") if isinstance(body, dict) else None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            return _api_exception(14, "PostDataInvalidException", "Expected a Contacts array")
        org = request[ORG_KEY]
        chosen = []
        for item in items:
            contact = org.contacts.get(str(item.get("ContactID") or "").lower())
            if contact is None:
                return _api_exception(
                    10, "ValidationException", f"The contact {item.get('ContactID')} was not found"
                )
            chosen.append(contact)
        for contact in chosen:
            held = _groups_of(contact)
            if not any(g["ContactGroupID"] == group["ContactGroupID"] for g in held):
                held.append(public(group, None))
        shown = [{"ContactID": c["ContactID"]} for c in chosen]
        return web.json_response(_envelope(accounting, shown))

    @table.delete(group_path + "/Contacts")
    async def remove_all(request: web.Request) -> web.Response:
        group = group_of(request)
        for contact in request[ORG_KEY].contacts.values():
            _leave(contact, group["ContactGroupID"])
        return web.Response(status=204)

    @table.delete(group_path + "/Contacts/{contact}")
    async def remove_one(request: web.Request) -> web.Response:
        group = group_of(request)
        contact = request[ORG_KEY].contacts.get(request.match_info["contact"].lower())
        if contact is None or not _leave(contact, group["ContactGroupID"]):
            return _api_exception(
                10, "ValidationException", "The contact is not a member of this contact group"
            )
        return web.Response(status=204)

    return table


def _groups_of(contact: dict[str, Any]) -> list[dict[str, Any]]:
    held = contact.get("ContactGroups")
    if not isinstance(held, list):
        held = contact["ContactGroups"] = []
    return held


def _leave(contact: dict[str, Any], group_id: str) -> bool:
    held = _groups_of(contact)
    kept = [g for g in held if g.get("ContactGroupID") != group_id]
    contact["ContactGroups"] = kept
    return len(kept) != len(held)
