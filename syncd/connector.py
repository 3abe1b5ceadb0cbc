"""The contract a connector author implements.

A connector talks to one app's contact-like object type. It declares:

* ``settings``: what a sync file's ``[a]``/``[b]`` table may hold for it (secrets flagged, so that
  they are redacted everywhere);
* ``capabilities``: what the app can do (read, write, incremental listing, lookup by email,
  archive or delete, batch sizes, idempotency keys);
* ``fields``: the app's fields as the connector exposes them in :class:`RemoteRecord.data`, each
  with the canonical contact field it maps to by default (see :mod:`syncd.contact`) and whether it
  is read-only.

and implements the async methods below. Records travel as flat dictionaries keyed by the
connector's own field names; values are strings, tuples/frozensets of strings (tags) or ``None``.
The engine does the mapping, normalisation, matching, merging and bookkeeping; a connector never
decides what to write.

Failures are typed (in the style of Home Assistant): raise :class:`RetryLater` when the app is
unavailable or out of budget, :class:`NeedsReauth` when credentials were refused,
:class:`ConnectorConfigError` when a setting is wrong, and report a refused record as a
:class:`WriteResult` with an ``error`` (the app's own reason) rather than raising. The failures
are defined in :mod:`syncd.failures` and re-exported here.

``docs/writing-a-connector.md`` walks through a complete minimal connector. The HTTP helpers that
connectors share (sessions, timeouts, retries honouring ``Retry-After``, rate budgets) live in
:mod:`syncd.http` and are re-exported here.
"""

from __future__ import annotations

import abc
import urllib.parse
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from syncd.failures import (
    ConnectorConfigError,
    ConnectorError,
    NeedsReauth,
    RateBudgetExhausted,
    RecordRejected,
    RetryLater,
)
from syncd.http import HttpClient, HttpResponse, RateBudget, shared_budget

__all__ = [
    "AuthPrompt",
    "Capabilities",
    "Connector",
    "ConnectorConfigError",
    "ConnectorContext",
    "ConnectorError",
    "FieldSpec",
    "HttpClient",
    "HttpResponse",
    "NeedsReauth",
    "RateBudget",
    "RateBudgetExhausted",
    "RecordRejected",
    "RecordWrite",
    "RemoteRecord",
    "RetryLater",
    "Setting",
    "SettingContext",
    "SettingValidator",
    "WebAuthorization",
    "WebhookChange",
    "WebhookReply",
    "WriteResult",
    "http_url",
    "one_character",
    "shared_budget",
]

RawValue = str | tuple[str, ...] | frozenset[str] | list[str] | None


# --- typed failures -------------------------------------------------------------------------
# (in syncd.failures, which syncd.http imports too; re-exported here for connector code)


# --- declarations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SettingContext:
    """What a :attr:`Setting.validator` sees besides the setting's own value: the side's other
    settings (after defaults) and the config directory, which relative paths are relative to."""

    settings: Mapping[str, Any]
    config_dir: Path | None = None

    def path(self, value: object) -> Path:
        path = Path(str(value)).expanduser()
        if not path.is_absolute() and self.config_dir is not None:
            path = self.config_dir / path
        return path


#: checks one setting's value (``None`` when it is not set and has no default): returns what is
#: wrong with it (one line, without the value when it may be secret), or ``None`` when it is fine
SettingValidator = Callable[[Any, SettingContext], "str | None"]


@dataclass(frozen=True)
class Setting:
    """One key a connector accepts in a sync file's ``[a]`` or ``[b]`` table.

    ``syncd check`` validates everything declared here, so that a bad value is refused before a
    run: the ``type``; ``choices``; ``minimum``/``maximum`` for numbers (NaN and infinities are
    always refused); ``path`` for a file the connector reads and writes (relative to the config
    directory; it must not be a directory, FIFO or device, and two sides may not share it); and a
    ``validator`` for anything else (it may look at the other settings, e.g. a grant that needs a
    secret).

    ``secret`` settings are redacted everywhere and must be at least 8 characters long. A
    ``${env:}``/``${file:}``/``${cred:}`` reference resolved into any other text setting is
    treated as secret too, unless the setting is declared ``public`` (a URL, a client id shown in
    an authorisation URL): only declare public what may appear in logs and messages.
    """

    name: str
    help: str
    type: type = str
    required: bool = False
    secret: bool = False
    default: Any = None
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    validator: SettingValidator | None = None
    public: bool = False
    path: bool = False

    @property
    def may_hold_secret(self) -> bool:
        """Whether a value resolved from a reference is treated as secret."""
        if self.secret:
            return True
        return not self.public and not self.path and self.type is str and self.choices is None


def http_url(value: object, context: SettingContext) -> str | None:
    """A :attr:`Setting.validator`: an ``http://`` or ``https://`` URL with a host."""
    if value is None:
        return None
    text = str(value).strip()
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        return "must be an http:// or https:// URL"
    host = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if not host or any(c.isspace() for c in text):
        return "must be an http:// or https:// URL with a host name"
    return None


def one_character(value: object, context: SettingContext) -> str | None:
    """A :attr:`Setting.validator`: exactly one character, not a quote or a line break."""
    if value is None:
        return None
    text = str(value)
    if len(text) != 1:
        return f"must be exactly one character, got {len(text)}"
    if text in ('"', "\r", "\n"):
        return "may not be a double quote or a line break"
    return None


@dataclass(frozen=True)
class FieldSpec:
    """One app field: its name in ``RemoteRecord.data`` and the canonical field it maps to.

    ``canonical`` is ``None`` for fields that are only available to custom mappings.
    ``read_only`` fields are read but never written.
    """

    name: str
    canonical: str | None = None
    read_only: bool = False


@dataclass(frozen=True)
class Capabilities:
    """What the app can do. The engine never asks a connector for what it did not declare."""

    read: bool = True
    write: bool = True
    #: ``list_records(cursor)`` returns only what changed since ``cursor``.
    incremental: bool = False
    #: ``lookup_by_email`` is implemented (used to reconcile pending creates, rule 4).
    lookup_by_email: bool = False
    #: what ``archive(ids)`` does in the app: archive (reversible), delete, or nothing at all.
    archive: Literal["archive", "delete"] | None = None
    create_batch_size: int = 1
    update_batch_size: int = 1
    #: the app honours an idempotency key on creates, so a retried create cannot duplicate.
    idempotency_keys: bool = False
    #: ``custom.<key>`` fields not listed in ``fields`` can be read and written.
    custom_fields: bool = False
    #: the app pushes change events: ``webhook_account``, ``verify_webhook`` are implemented
    #: (see "Webhooks" in docs/writing-a-connector.md)
    webhooks: bool = False
    #: ``read_records(ids)`` reads given records in batches (what a webhook-driven run uses)
    read_by_ids: bool = False

    @property
    def write_only(self) -> bool:
        return self.write and not self.read


# --- records and writes ---------------------------------------------------------------------


@dataclass(slots=True)
class RemoteRecord:
    """One record as listed from the app.

    ``error`` marks a record the connector could list but not read (a broken CSV row): the engine
    reports it and leaves it alone, and never takes it for deleted.
    """

    id: str
    data: dict[str, RawValue]
    updated_at: datetime | None = None
    archived: bool = False
    error: str | None = None
    #: optional: a revision that changes whenever the record changes (an etag, a revision
    #: counter). When given, an unchanged version lets the engine skip the record without
    #: hashing it; a changed one is still compared field by field. Never a timestamp with
    #: whole-second precision: two edits in one second would share it.
    version: str | None = None
    #: the app merged this record into another one (Xero's ``MergedToContactID``): the engine
    #: re-points a link from this record to that one instead of treating it as archived
    merged_into: str | None = None


@dataclass(slots=True)
class RecordWrite:
    """One record to create (``id`` is ``None``) or update.

    ``key`` is unique to this write: send it as the idempotency key where the app takes one. A
    create's key is stable across retries and restarts (a create sent again after a crash carries
    the same key); an update's key is new in every run, since it is a new change. ``data`` holds
    only the fields to set, by the connector's field names; ``None`` clears a field.
    """

    key: str
    data: dict[str, RawValue]
    id: str | None = None


@dataclass(slots=True)
class WriteResult:
    """The outcome for one :class:`RecordWrite` (matched by ``key``) or one archived id.

    On success ``id`` is the record's id in the app; on refusal ``error`` is the app's reason.
    """

    key: str
    id: str | None = None
    error: str | None = None
    #: the record's new ``RemoteRecord.version`` when the app answers with it, so that the
    #: next run recognises the record as unchanged without hashing it
    version: str | None = None
    #: what the app stored, by the connector's field names, where it is not what was sent: a
    #: value the app (or the connector) derived because none was sent (Xero's required Name,
    #: made from the person's name), one it kept instead of a clear it cannot hold, one it
    #: reformatted. The engine takes these as the record's agreed values, so that the next run
    #: does not mistake the app's own value for a person's edit and send it back (rule 2).
    #: Fields left out were stored as sent.
    stored: dict[str, RawValue] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class WebhookChange:
    """One record a webhook delivery says changed. ``tenant`` is the organisation/workspace the
    event belongs to, where one account (one app registration) serves several: the daemon only
    hands the change to syncs whose side uses that tenant (``Connector.webhook_tenant``)."""

    record_id: str
    tenant: str | None = None
    #: ``create`` or ``update`` (an archive is an update; the read tells what happened)
    event: str = "update"


@dataclass
class WebhookReply:
    """What :meth:`Connector.verify_webhook` made of one delivery.

    ``status`` is what the endpoint answers: 200 for a delivery whose signature holds (also a
    verification request such as Xero's Intent to Receive, which has no changes), 401 for one
    whose signature is missing or wrong; ``body`` is the answer's body (empty for Xero; a
    challenge for apps that echo one), ``changes`` the records it names.
    """

    status: int = 200
    changes: list[WebhookChange] = field(default_factory=list)
    body: bytes = b""
    content_type: str | None = None

    @property
    def verified(self) -> bool:
        return 200 <= self.status < 300


class AuthPrompt(Protocol):
    """How ``syncd auth`` talks to the person authorising (headless-first: print and paste)."""

    def show(self, text: str) -> None: ...

    def ask(self, question: str) -> str: ...


@dataclass(frozen=True)
class WebAuthorization:
    """An authorisation begun in the web console (:meth:`Connector.begin_web_authorization`).

    ``url`` is where the browser goes (the app's consent page); the app sends it back to the
    daemon's ``/oauth/callback`` with ``state`` in the query. ``data`` is the connector's own
    (a PKCE verifier, say): the daemon keeps it in memory, never shows or logs it, and hands it
    back to :meth:`Connector.finish_web_authorization`."""

    url: str
    state: str
    redirect_uri: str
    data: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"WebAuthorization(redirect_uri={self.redirect_uri!r})"


@dataclass
class ConnectorContext:
    """What the engine hands a connector besides its settings."""

    sync: str
    side: str
    state_dir: Path
    phone_region: str = "GB"
    #: a dry run: the connector must not change anything in the app (nor in its files)
    dry_run: bool = False
    #: the config directory: relative paths in settings are relative to it
    config_dir: Path | None = None
    #: A stable identifier of the account (for sharing rate budgets across syncs).
    extra: dict[str, Any] = field(default_factory=dict)
    #: on a PostgreSQL store: where OAuth tokens are kept instead of files in ``state_dir``, a
    #: :class:`syncd.store.tokens.TokenVault` (``None`` on SQLite)
    tokens: Any = None
    #: on a PostgreSQL store: rate budgets shared with the other daemons, for
    #: :func:`shared_budget`'s ``backend`` (:class:`syncd.store.budget.SharedBudgets`)
    budgets: Any = None


# --- the contract ---------------------------------------------------------------------------


class Connector(abc.ABC):
    """Base class of every connector. Subclasses set the class attributes and the methods."""

    #: the name used in sync files (``connector = "csv"``)
    name: ClassVar[str]
    #: a short human title (``"CSV file"``)
    title: ClassVar[str] = ""
    settings: ClassVar[Sequence[Setting]] = ()
    #: a class attribute; a connector may replace it per instance (a configurable batch size)
    capabilities: Capabilities = Capabilities()
    fields: ClassVar[Sequence[FieldSpec]] = ()

    def __init__(self, settings: Mapping[str, Any], context: ConnectorContext) -> None:
        self.config = dict(settings)
        self.context = context

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Open sessions, resolve tenants. Called once before any other method."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release sessions. Called once, also after a failure."""

    #: whether ``syncd auth SYNC SIDE`` applies to this connector (an OAuth authorisation)
    needs_authorization: ClassVar[bool] = False

    @classmethod
    def keeps_tokens(cls, settings: Mapping[str, Any]) -> bool:
        """Whether a side with these settings keeps OAuth tokens (in ``context.tokens`` on a
        PostgreSQL store, which then needs ``[store] token_key``)."""
        return cls.needs_authorization

    async def authorize(self, prompt: AuthPrompt) -> str:
        """Perform the one-time authorisation interactively and store what it yields (tokens)
        durably under ``context.state_dir`` (or ``context.tokens`` when set). Return a one-line
        summary for the user."""
        raise NotImplementedError(f"{self.name} needs no authorisation")

    #: whether the web console can run the authorisation in a browser, with the app sending the
    #: browser back to the daemon (``begin_web_authorization``/``finish_web_authorization``)
    web_authorization: ClassVar[bool] = False

    async def begin_web_authorization(self, redirect_uri: str) -> WebAuthorization:
        """Start an authorisation whose redirect comes back to ``redirect_uri`` (the daemon's
        ``/oauth/callback``): the consent URL, with a fresh random ``state`` (and PKCE where
        the app takes it). Raise a typed failure when this configuration cannot do it."""
        raise NotImplementedError(f"{self.name} cannot be authorised from the console")

    async def finish_web_authorization(
        self, pending: WebAuthorization, query: Mapping[str, str]
    ) -> str:
        """Finish it with the callback's query (``code``, ``state``, or ``error``): check
        ``state`` against ``pending.state``, exchange the code, store what it yields durably
        (as :meth:`authorize` does) and return a one-line summary for the user."""
        raise NotImplementedError(f"{self.name} cannot be authorised from the console")

    @classmethod
    def account_label(cls, settings: Mapping[str, Any]) -> str | None:
        """A short name of the account ``settings`` reach, for the console's overview (an
        organisation, a file name, a host). It must never contain a secret; the default names
        the file of a ``path`` setting, or else the host of a public ``*_url`` setting."""
        for spec in cls.settings:
            value = settings.get(spec.name)
            if spec.path and value:
                return Path(str(value)).name
        for spec in cls.settings:
            value = settings.get(spec.name)
            if spec.public and spec.name.endswith("url") and isinstance(value, str) and value:
                host = urllib.parse.urlsplit(value).netloc
                if host:
                    return host
        return None

    async def keep_alive(self) -> str | None:
        """Called by the daemon about once a day for every connector that needs authorisation,
        whether its sync runs or is paused: refresh what expires when unused (Xero's refresh
        tokens die after 60 idle days). Return a one-line summary, or None when nothing was due."""
        return None

    async def check(self) -> str:
        """Reach the app with the given credentials; return a one-line description of what
        answered (used by ``syncd check --connect``). Raise a typed failure otherwise."""
        return "no connection check implemented"

    def list_records(self, cursor: str | None) -> AsyncIterator[list[RemoteRecord]]:
        """Yield pages of records: all of them when ``cursor`` is ``None``, else those changed
        since the cursor (only when ``capabilities.incremental``). Archived records must be
        listed with ``archived=True`` where the app can show them."""
        raise NotImplementedError(f"{self.name} cannot list records")

    def make_cursor(self, watermark: datetime) -> str:
        """Turn the engine's committed high-water mark into this connector's cursor string."""
        return watermark.isoformat()

    def listing_cursor(self) -> str | None:
        """A cursor of the app's own for the listing just done (a WebDAV sync-token), or None.

        When it returns a string after ``list_records``, the engine stores that string as this
        side's cursor (instead of one made from the records' update times by ``make_cursor``)
        once the run has committed, and hands it back to the next incremental
        ``list_records(cursor)``; it keeps the previous cursor when a record listed in this
        run failed or was backed off, so that the record is listed again. See "An app whose
        cursor is not a time" in docs/writing-a-connector.md."""
        return None

    async def create(self, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        """Create records (at most ``create_batch_size``); one result per write, by ``key``."""
        raise NotImplementedError(f"{self.name} cannot create records")

    async def update(self, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        """Update records (at most ``update_batch_size``); one result per write, by ``key``."""
        raise NotImplementedError(f"{self.name} cannot update records")

    async def archive(self, ids: Sequence[str]) -> list[WriteResult]:
        """Archive or delete records (as ``capabilities.archive`` says); results keyed by id."""
        raise NotImplementedError(f"{self.name} cannot archive records")

    async def lookup_by_email(self, emails: Sequence[str]) -> list[RemoteRecord]:
        """Records whose email is one of ``emails`` (lower-cased), archived ones included."""
        raise NotImplementedError(f"{self.name} cannot look records up by email")

    # --- webhooks (capabilities.webhooks / read_by_ids) ---------------------------------------

    #: the fewest calls one incremental listing costs (to check an ``interval`` against
    #: :meth:`daily_call_budget`)
    calls_per_poll: ClassVar[int] = 1

    @classmethod
    def daily_call_budget(cls, settings: Mapping[str, Any]) -> int | None:
        """Calls a day the app allows this account, or None when it publishes no limit. syncd
        refuses an ``interval`` whose polls alone would take more than half of it."""
        return None

    def webhook_account(self) -> str | None:
        """The account part of this side's hook path, ``POST /hooks/<connector>/<account>``
        (Xero: the app's client id, since Xero posts every organisation's events to one URL
        per app), or None when the settings do not enable webhooks. No I/O: called on every
        config load."""
        return None

    async def webhook_tenant(self) -> str | None:
        """After :meth:`open`: the tenant (organisation) of the account this side syncs, so that
        events of the account's other tenants are ignored; None when the account has one."""
        return None

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookReply:
        """Check one delivery's signature over the exact raw ``body`` (in constant time:
        :func:`hmac.compare_digest`) and name the records it says changed. No I/O, quick: the
        vendor waits for the answer. Never raise for bad input: answer 401 or 200 without
        changes."""
        return WebhookReply(status=401)

    def read_records(self, ids: Sequence[str]) -> AsyncIterator[list[RemoteRecord]]:
        """Yield pages of the records with these ids, archived ones with ``archived=True`` (a
        record the app no longer has is simply left out). Batch: as few calls as the app allows
        (Xero: one ``GET /Contacts?IDs=`` per 50 ids)."""
        raise NotImplementedError(f"{self.name} cannot read records by id")

    @classmethod
    def field_spec(cls, name: str) -> FieldSpec | None:
        for spec in cls.fields:
            if spec.name == name:
                return spec
        return None

    @classmethod
    def secret_settings(cls) -> frozenset[str]:
        return frozenset(s.name for s in cls.settings if s.secret)
