"""Safe on real accounts: the installation id, account bindings, per-field change times,
external change times, broken links and values in flight on mappings, and a version guard on
mapping writes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "installation",
        # One row at most: the primary key can only ever be true.
        sa.Column("singleton", sa.Boolean, nullable=False, server_default=sa.text("true")),
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("singleton", name="pk_installation"),
        sa.CheckConstraint("singleton", name="ck_installation_singleton"),
    )
    op.create_table(
        "account_bindings",
        sa.Column("system", sa.Text, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("mode", sa.Text, nullable=False),
        sa.Column("bound_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("system", name="pk_account_bindings"),
    )
    op.add_column("customers", sa.Column("name_changed_at", TIMESTAMP))
    op.add_column("customers", sa.Column("email_changed_at", TIMESTAMP))
    op.add_column(
        "external_mappings",
        sa.Column("external_writes", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    )
    op.add_column("external_mappings", sa.Column("broken", sa.Text))
    op.add_column("external_mappings", sa.Column("sent", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")))
    op.add_column("external_mappings", sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")))


def downgrade() -> None:
    op.drop_column("external_mappings", "version")
    op.drop_column("external_mappings", "sent")
    op.drop_column("external_mappings", "broken")
    op.drop_column("external_mappings", "external_writes")
    op.drop_column("customers", "email_changed_at")
    op.drop_column("customers", "name_changed_at")
    op.drop_table("account_bindings")
    op.drop_table("installation")
