"""Retention: the indexes that keep the worker's pruning and scrubbing proportional to what they
delete (never a scan of the whole outbox, inbox, sync history or catalog), and the mark of a
deleted customer whose personal data was scrubbed; and the index of unsettled sync records that
the status screen and the sampled metrics read (``adapters.postgres.status``).

Each index is made ``IF NOT EXISTS``: on a large database an operator may build them beforehand
with ``CREATE INDEX CONCURRENTLY`` (same names and definitions), so that this migration does not
hold writes on those tables while it builds them.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PUBLISHED = sa.text("published_at IS NOT NULL")


def upgrade() -> None:
    op.add_column("customers", sa.Column("scrubbed_at", sa.DateTime(timezone=True)))
    op.create_index(
        "ix_customers_unscrubbed",
        "customers",
        ["id"],
        postgresql_where=sa.text("deleted AND scrubbed_at IS NULL"),
        if_not_exists=True,
    )
    op.create_index("ix_outbox_published_at", "outbox", ["published_at"], postgresql_where=PUBLISHED, if_not_exists=True)
    op.create_index("ix_outbox_published_customer_id", "outbox", ["customer_id"], postgresql_where=PUBLISHED, if_not_exists=True)
    op.create_index("ix_inbox_processed_at", "inbox", ["processed_at"], if_not_exists=True)
    op.create_index(
        "ix_sync_records_succeeded_updated_at",
        "sync_records",
        ["updated_at"],
        postgresql_where=sa.text("status = 'succeeded'"),
        if_not_exists=True,
    )
    op.create_index(
        "ix_dead_letters_replayed_at",
        "dead_letters",
        ["replayed_at"],
        postgresql_where=sa.text("replayed_at IS NOT NULL"),
        if_not_exists=True,
    )
    # The status screen's (and the sampled metrics') unsettled records: few, whatever the history.
    op.create_index(
        "ix_sync_records_unsettled",
        "sync_records",
        ["system", "status", "updated_at"],
        postgresql_where=sa.text("status IN ('pending', 'retrying', 'dead')"),
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_index("ix_sync_records_unsettled", table_name="sync_records")
    op.drop_index("ix_dead_letters_replayed_at", table_name="dead_letters")
    op.drop_index("ix_sync_records_succeeded_updated_at", table_name="sync_records")
    op.drop_index("ix_inbox_processed_at", table_name="inbox")
    op.drop_index("ix_outbox_published_customer_id", table_name="outbox")
    op.drop_index("ix_outbox_published_at", table_name="outbox")
    op.drop_index("ix_customers_unscrubbed", table_name="customers")
    op.drop_column("customers", "scrubbed_at")
