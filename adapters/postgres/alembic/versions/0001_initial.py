"""The initial schema: customers, their external mappings, sync records, the outbox and the inbox.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("name", sa.Text),
        sa.Column("email", sa.Text),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.PrimaryKeyConstraint("id", name="pk_customers"),
    )
    op.create_index("ix_customers_lower_email", "customers", [sa.text("lower(email)")])

    op.create_table(
        "external_mappings",
        sa.Column("customer_id", sa.BigInteger, nullable=False),
        sa.Column("system", sa.Text, nullable=False),
        sa.Column("external_id", sa.Text, nullable=False),
        sa.Column("synced_name", sa.Text),
        sa.Column("synced_email", sa.Text),
        sa.Column("synced_version", sa.Integer, nullable=False),
        sa.Column("synced_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "system", name="pk_external_mappings"),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name="fk_external_mappings_customer_id_customers"),
        sa.UniqueConstraint("system", "external_id", name="uq_external_mappings_system_external_id"),
    )

    op.create_table(
        "sync_records",
        sa.Column("id", sa.BigInteger, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("system", sa.Text, nullable=False),
        sa.Column("direction", sa.Text, nullable=False),
        sa.Column("customer_id", sa.BigInteger),
        sa.Column("operation", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("note", sa.Text),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sync_records"),
        sa.UniqueConstraint("event_id", "system", "direction", name="uq_sync_records_event_id_system_direction"),
        sa.CheckConstraint("direction IN ('outbound', 'inbound')", name="ck_sync_records_direction"),
        sa.CheckConstraint("operation IN ('create', 'update', 'delete')", name="ck_sync_records_operation"),
        sa.CheckConstraint("status IN ('pending', 'succeeded', 'failed', 'dead')", name="ck_sync_records_status"),
    )
    op.create_index("ix_sync_records_customer_id_id", "sync_records", ["customer_id", sa.text("id DESC")])

    op.create_table(
        "outbox",
        sa.Column("position", sa.BigInteger, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("customer_id", sa.BigInteger, nullable=False),
        sa.Column("payload", postgresql.JSONB, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.Column("published_at", TIMESTAMP),
        sa.PrimaryKeyConstraint("position", name="pk_outbox"),
        sa.UniqueConstraint("event_id", name="uq_outbox_event_id"),
    )
    pending = sa.text("published_at IS NULL")
    op.create_index("ix_outbox_pending", "outbox", ["position"], postgresql_where=pending)
    op.create_index("ix_outbox_pending_by_customer", "outbox", ["customer_id", "position"], postgresql_where=pending)
    # NOTIFY is delivered when the inserting transaction commits (and never if it rolls back), and
    # Postgres folds identical notifications of one transaction into one: a statement-level trigger
    # is all the relay needs to wake up exactly when there is committed work.
    op.execute(
        """
        CREATE FUNCTION custsync_notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('custsync_outbox', '');
            RETURN NULL;
        END;
        $$
        """
    )
    op.execute("CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION custsync_notify_outbox()")

    op.create_table(
        "inbox",
        sa.Column("system", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("processed_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("system", "event_id", name="pk_inbox"),
    )


def downgrade() -> None:
    op.drop_table("inbox")
    op.execute("DROP TRIGGER outbox_notify ON outbox")
    op.execute("DROP FUNCTION custsync_notify_outbox()")
    op.drop_table("outbox")
    op.drop_table("sync_records")
    op.drop_table("external_mappings")
    op.drop_table("customers")
