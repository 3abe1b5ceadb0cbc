"""The peewee models of the status database (the schema itself is made by the migrations)."""

from __future__ import annotations

from peewee import (
    AutoField,
    BooleanField,
    CharField,
    DatabaseProxy,
    DateTimeField,
    IntegerField,
    Model,
    TextField,
)

database = DatabaseProxy()


class Base(Model):
    class Meta:
        database = database
        legacy_table_names = False


class SyncState(Base):
    sync = CharField(primary_key=True)
    initialized_at = DateTimeField(null=True)
    cursor_a = TextField(null=True)
    cursor_b = TextField(null=True)
    last_full_a = DateTimeField(null=True)
    last_full_b = DateTimeField(null=True)
    signature = TextField(null=True)


class Link(Base):
    id = AutoField()

    """One contact's identity across a sync, with what each side held when they last agreed.

    ``base_a``/``base_b`` are JSON objects of field key → short hash (never the values);
    ``fp_a``/``fp_b`` fingerprint each side's whole raw record, so an unchanged record is
    recognised without normalising it. ``state`` is ``linked``, ``seen`` (a record known from a
    ``new-only`` first run, not synced until it changes), ``gone_a``/``gone_b`` (deleted or
    archived on that side; kept so the survivor is not re-created) or ``archived``.
    """

    sync = CharField()
    a_id = CharField(null=True)
    b_id = CharField(null=True)
    state = CharField(default="linked")
    base_a = TextField(null=True)
    base_b = TextField(null=True)
    fp_a = CharField(null=True)
    fp_b = CharField(null=True)
    updated_at = DateTimeField()
    #: the run that made the link (``None``: made before it was recorded)
    linked_run = IntegerField(null=True)


class Run(Base):
    id = AutoField()
    sync = CharField(index=True)
    started_at = DateTimeField()
    finished_at = DateTimeField(null=True)
    outcome = CharField(default="running")
    dry_run = BooleanField(default=False)
    trigger = CharField(default="cli")
    pid = IntegerField(null=True)
    counts = TextField(default="{}")
    message = TextField(null=True)


class RecordIssue(Base):
    id = AutoField()

    """Why a record did not sync: ``failed`` (the app refused it; retried with backoff),
    ``excluded`` (syncd will not sync it as it is) or ``ambiguous`` (its email is not unique)."""

    sync = CharField()
    side = CharField()
    record_id = CharField()
    kind = CharField()
    email = CharField(null=True)
    reason = TextField()
    first_seen = DateTimeField()
    last_seen = DateTimeField()
    attempts = IntegerField(default=1)
    next_attempt_at = DateTimeField(null=True)
    run_id = IntegerField(null=True)


class RecordDecision(Base):
    id = AutoField()

    """The last decision about a record that neither synced nor is an issue: ``filtered`` (no
    rule of its direction matched). Replaced by the next decision, deleted once it syncs."""

    sync = CharField()
    side = CharField()
    record_id = CharField()
    kind = CharField()
    email = CharField(null=True)
    reason = TextField()
    run_id = IntegerField(null=True)
    decided_at = DateTimeField()

    class Meta:
        table_name = "record_decision"


class PendingWrite(Base):
    id = AutoField()

    """A create that was about to be sent (rule 4): committed before the request goes out, removed
    with the link that records its outcome. One left behind means the process died in between."""

    sync = CharField()
    side = CharField()
    source_id = CharField()
    key = CharField(unique=True)
    email = CharField(null=True)
    created_at = DateTimeField()
    run_id = IntegerField(null=True)


class Journal(Base):
    id = AutoField()

    """What syncd sent, per field (rule 4): one row per outgoing update, create or archive,
    committed before the request goes out and deleted once its outcome is committed. A row left
    behind means the process died in between: the next run recognises the values on the target
    that equal what was sent as syncd's own, not as the person's data.

    ``sent`` is a JSON object of the app's field names → the values sent; ``hashes`` a JSON
    object of the field hashes: the target's and the source's bases as planned once written,
    the target's hashes before, and which fields were written (see
    :meth:`syncd.store.JournalRow.hashes`).
    ``record_id`` is the written record (``None`` for a create, known by ``key``, its pending
    write's key, and ``source_id``, the record it was made from).
    """

    sync = CharField()
    run_id = IntegerField(null=True)
    side = CharField()
    kind = CharField()
    record_id = CharField(null=True)
    source_id = CharField(null=True)
    key = CharField(null=True)
    sent = TextField()
    hashes = TextField()
    created_at = DateTimeField()
    #: kept as history (migration 0003): the record's email, why it was written, per field the
    #: view key and the value before (``detail``), what the app stored, the outcome
    email = CharField(null=True)
    reason = TextField(null=True)
    detail = TextField(null=True)
    stored = TextField(null=True)
    outcome = CharField(default="pending")
    settled_at = DateTimeField(null=True)

    class Meta:
        table_name = "journal"


class Review(Base):
    id = AutoField()

    """A deletion held back for a person (``deletions = "review"``, or a mass deletion with
    ``on_mass_deletion = "review"``): ``deleted_side`` lost the record, ``action`` is what
    approving it does on the survivor's side (``archive``, ``delete``, ``tag`` or ``forget``).
    ``state``: ``held``, ``approved``, ``rejected`` or ``dropped`` (the record came back or
    was edited)."""

    sync = CharField()
    link_id = IntegerField()
    deleted_side = CharField()
    deleted_id = CharField(null=True)
    survivor_side = CharField()
    survivor_id = CharField(null=True)
    email = CharField(null=True)
    action = CharField()
    why = TextField()
    state = CharField(default="held")
    run_id = IntegerField(null=True)
    detected_at = DateTimeField()
    decided_at = DateTimeField(null=True)
    note = TextField(null=True)

    class Meta:
        table_name = "review"


class KeyValue(Base):
    key = CharField(primary_key=True)
    value = TextField()
    updated_at = DateTimeField()


ALL_MODELS = (
    SyncState,
    Link,
    Run,
    RecordIssue,
    RecordDecision,
    PendingWrite,
    Journal,
    Review,
    KeyValue,
)
