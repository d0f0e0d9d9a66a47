"""The schema as SQLAlchemy Core tables: what the repositories query (the domain never sees them).

Migrations do not derive from this module (0001 spells its DDL out, so that it never changes when
this file does); ``alembic check`` compares the two.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

# Predictable constraint names, so that later migrations can refer to them.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_label)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

TIMESTAMP = DateTime(timezone=True)

customers = Table(
    "customers",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("name", Text),
    Column("email", Text),
    Column("version", Integer, nullable=False),
    Column("created_at", TIMESTAMP, nullable=False),
    Column("updated_at", TIMESTAMP, nullable=False),
    Column("deleted", Boolean, nullable=False, server_default=text("false")),
    # When each synced field got its value (latest_wins); NULL: before 0004, read as updated_at.
    Column("name_changed_at", TIMESTAMP),
    Column("email_changed_at", TIMESTAMP),
    # When a deleted customer's personal data was scrubbed everywhere (adapters.postgres.retention).
    Column("scrubbed_at", TIMESTAMP),
    # The email filter compares lower(email) = lower(:email); this index is what keeps it cheap.
    Index("ix_customers_lower_email", func.lower(text("email"))),
    # The retention pass's list of deleted customers still to scrub: never the whole catalog.
    Index("ix_customers_unscrubbed", "id", postgresql_where=text("deleted AND scrubbed_at IS NULL")),
)

external_mappings = Table(
    "external_mappings",
    metadata,
    Column("customer_id", BigInteger, ForeignKey("customers.id"), nullable=False),
    Column("system", Text, nullable=False),
    Column("external_id", Text, nullable=False),
    Column("synced_name", Text),
    Column("synced_email", Text),
    Column("synced_version", Integer, nullable=False),
    Column("synced_at", TIMESTAMP, nullable=False),
    # Per field, the newest change made over there that an event told of: {"name": {"value", "at"}}.
    Column("external_writes", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("broken", Text),  # why the link cannot be used (the external id is unknown there)
    Column("sent", JSONB, nullable=False, server_default=text("'{}'::jsonb")),  # our push in flight: {"name": ...}
    Column("version", Integer, nullable=False, server_default=text("1")),  # guards every write
    PrimaryKeyConstraint("customer_id", "system"),
    # One external customer is the twin of at most one catalog customer.
    UniqueConstraint("system", "external_id"),
)

sync_records = Table(
    "sync_records",
    metadata,
    # Insertion order: ``for_customer`` lists newest first by id, and an upsert keeps the id.
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("event_id", Text, nullable=False),
    Column("system", Text, nullable=False),
    Column("direction", Text, nullable=False),
    # No foreign key: a record may predate its customer (an inbound create) or outlive it.
    Column("customer_id", BigInteger),
    Column("operation", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),
    Column("note", Text),
    Column("created_at", TIMESTAMP, nullable=False),
    Column("updated_at", TIMESTAMP, nullable=False),
    UniqueConstraint("event_id", "system", "direction"),
    CheckConstraint("direction IN ('outbound', 'inbound')", name="direction"),
    CheckConstraint("operation IN ('create', 'update', 'delete')", name="operation"),
    CheckConstraint("status IN ('pending', 'succeeded', 'retrying', 'dead')", name="status"),
    Index("ix_sync_records_customer_id_id", "customer_id", text("id DESC")),
    # Retention deletes succeeded records oldest first; a record is mostly inserted as succeeded.
    Index("ix_sync_records_succeeded_updated_at", "updated_at", postgresql_where=text("status = 'succeeded'")),
    # The status screen's unsettled records (application.status): few, whatever the history.
    Index(
        "ix_sync_records_unsettled",
        "system",
        "status",
        "updated_at",
        postgresql_where=text("status IN ('pending', 'retrying', 'dead')"),
    ),
)

outbox = Table(
    "outbox",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=True),
    Column("event_id", Text, nullable=False, unique=True),
    Column("customer_id", BigInteger, nullable=False),
    # The msgspec JSON of a CustomerChanged (domain.messages.encode), as jsonb so that it can be queried.
    Column("payload", JSONB, nullable=False),
    Column("created_at", TIMESTAMP, nullable=False, server_default=func.now()),
    Column("published_at", TIMESTAMP),
    # Published rows pile up; this partial index keeps the relay's claim proportional to its batch.
    Index("ix_outbox_pending", "position", postgresql_where=text("published_at IS NULL")),
    # Retention: published events oldest first, and a deleted customer's events to scrub. Both
    # partial, so an insert (the API's write path) maintains neither; the relay's mark does.
    Index("ix_outbox_published_at", "published_at", postgresql_where=text("published_at IS NOT NULL")),
    Index("ix_outbox_published_customer_id", "customer_id", postgresql_where=text("published_at IS NOT NULL")),
)

inbox = Table(
    "inbox",
    metadata,
    Column("system", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    Column("processed_at", TIMESTAMP, nullable=False),
    PrimaryKeyConstraint("system", "event_id"),
    Index("ix_inbox_processed_at", "processed_at"),  # retention deletes the oldest entries first
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    # The topic the message came from (sync.outbound / sync.inbound), where a replay sends it back.
    Column("topic", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    # The message as it was on the topic, byte for byte (it may not even be valid JSON).
    Column("payload", LargeBinary, nullable=False),
    Column("error", Text, nullable=False),
    Column("created_at", TIMESTAMP, nullable=False),  # when it (last) died
    Column("replayed_at", TIMESTAMP),
    # One letter per event: dying again after a replay updates it instead of adding another.
    UniqueConstraint("topic", "event_id"),
    Index("ix_dead_letters_created_at_id", "created_at", "id"),
    Index("ix_dead_letters_replayed_at", "replayed_at", postgresql_where=text("replayed_at IS NOT NULL")),  # retention
)

create_intents = Table(
    "create_intents",
    metadata,
    Column("customer_id", BigInteger, nullable=False),
    Column("system", Text, nullable=False),
    Column("idempotency_key", Text, nullable=False),
    Column("name", Text),
    Column("email", Text),
    Column("created_at", TIMESTAMP, nullable=False),
    PrimaryKeyConstraint("customer_id", "system"),
)

installation = Table(
    "installation",
    metadata,
    Column("singleton", Boolean, nullable=False, server_default=text("true")),
    Column("id", Text, nullable=False),
    Column("created_at", TIMESTAMP, nullable=False),
    PrimaryKeyConstraint("singleton"),
    CheckConstraint("singleton", name="singleton"),
)

account_bindings = Table(
    "account_bindings",
    metadata,
    Column("system", Text, nullable=False),
    Column("account_id", Text, nullable=False),
    Column("mode", Text, nullable=False),
    Column("bound_at", TIMESTAMP, nullable=False),
    PrimaryKeyConstraint("system"),
)

sync_cursors = Table(
    "sync_cursors",
    metadata,
    Column("system", Text, nullable=False),
    Column("name", Text, nullable=False),  # e.g. "events": the catch-up poller's cursor
    Column("position", Text),  # opaque to storage: the poller's own encoding
    Column("updated_at", TIMESTAMP, nullable=False),
    # Whoever polls holds the lease until ``leased_until``: one poller at a time per cursor.
    Column("leased_by", Text),
    Column("leased_until", TIMESTAMP),
    PrimaryKeyConstraint("system", "name"),
)

# One account-wide request budget per external system, shared by every process that calls it
# (adapters.postgres.budget): the time of its next free slot (adapters.budget).
rate_budgets = Table(
    "rate_budgets",
    metadata,
    Column("name", Text, primary_key=True),  # e.g. "stripe"
    Column("next_free_at", TIMESTAMP, nullable=False),  # the next slot nobody has reserved yet
)

reconcile_runs = Table(
    "reconcile_runs",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("system", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("dry_run", Boolean, nullable=False),
    Column("match_by", Text),
    Column("trigger", Text, nullable=False),  # cli, api, schedule
    Column("created_at", TIMESTAMP, nullable=False),
    Column("started_at", TIMESTAMP),
    Column("finished_at", TIMESTAMP),
    Column("heartbeat_at", TIMESTAMP),  # a running run whose heartbeat stopped was interrupted
    Column("owner", Text),
    Column("phase", Text, nullable=False),
    Column("checkpoint", Text),  # where in its phase a resumed run goes on from
    Column("counts", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("error", Text),
    CheckConstraint("status IN ('queued', 'running', 'done', 'failed', 'cancelled')", name="status"),
    Index("ix_reconcile_runs_active", "system", unique=True, postgresql_where=text("status IN ('queued', 'running')")),
    Index("ix_reconcile_runs_system_id", "system", "id"),
)

reconcile_findings = Table(
    "reconcile_findings",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("run_id", BigInteger, ForeignKey("reconcile_runs.id", ondelete="CASCADE"), nullable=False),
    Column("subject", Text, nullable=False),  # what it is about: "customer:<id>" or "external:<id>"
    Column("kind", Text, nullable=False),
    Column("customer_id", BigInteger),
    Column("external_id", Text),
    Column("fields", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("detail", Text),
    Column("fix", Text, nullable=False),
    Column("fix_status", Text, nullable=False),
    Column("at", TIMESTAMP, nullable=False),
    UniqueConstraint("run_id", "subject"),
)

# The external records a run has read: which it saw (a link whose record is not among them is
# missing there), and the unlinked ones with their content, for matching and import.
reconcile_seen = Table(
    "reconcile_seen",
    metadata,
    Column("run_id", BigInteger, ForeignKey("reconcile_runs.id", ondelete="CASCADE"), nullable=False),
    Column("external_id", Text, nullable=False),
    Column("unlinked", Boolean, nullable=False),
    Column("email_key", Text),
    Column("record", JSONB),
    Column("decided", Boolean, nullable=False, server_default=text("false")),
    PrimaryKeyConstraint("run_id", "external_id"),
    Index("ix_reconcile_seen_run_id_email_key", "run_id", "email_key", postgresql_where=text("unlinked")),
)

# Every table the service owns, children first (the order TRUNCATE and DROP want).
ALL_TABLES = (
    reconcile_seen,
    reconcile_findings,
    reconcile_runs,
    sync_cursors,
    rate_budgets,
    external_mappings,
    create_intents,
    sync_records,
    outbox,
    inbox,
    dead_letters,
    account_bindings,
    installation,
    customers,
)

# The relay LISTENs here; a trigger on outbox NOTIFYs it when inserts commit (migration 0001).
OUTBOX_CHANNEL = "custsync_outbox"
