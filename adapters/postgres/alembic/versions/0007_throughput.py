"""Throughput: one account-wide request budget per external system, shared by every worker; the
relay claims the oldest pending events one relay at a time, so the per-customer pending index
(the old claim's ordering probe) only cost every insert.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_budgets",
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("next_free_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_rate_budgets"),
    )
    op.drop_index("ix_outbox_pending_by_customer", table_name="outbox")


def downgrade() -> None:
    pending = sa.text("published_at IS NULL")
    op.create_index("ix_outbox_pending_by_customer", "outbox", ["customer_id", "position"], postgresql_where=pending)
    op.drop_table("rate_budgets")
