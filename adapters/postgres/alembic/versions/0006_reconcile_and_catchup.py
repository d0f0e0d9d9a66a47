"""Reconcile and catch-up: polling cursors (with a lease, so one worker polls at a time), and
reconcile runs with their checkpoint, findings, and the external records a run has read.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sync_cursors",
        sa.Column("system", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("position", sa.Text),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("leased_by", sa.Text),
        sa.Column("leased_until", TIMESTAMP),
        sa.PrimaryKeyConstraint("system", "name", name="pk_sync_cursors"),
    )
    op.create_table(
        "reconcile_runs",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("system", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("dry_run", sa.Boolean, nullable=False),
        sa.Column("match_by", sa.Text),
        sa.Column("trigger", sa.Text, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("started_at", TIMESTAMP),
        sa.Column("finished_at", TIMESTAMP),
        sa.Column("heartbeat_at", TIMESTAMP),
        sa.Column("owner", sa.Text),
        sa.Column("phase", sa.Text, nullable=False),
        sa.Column("checkpoint", sa.Text),
        sa.Column("counts", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("error", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_reconcile_runs"),
        sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed', 'cancelled')", name="ck_reconcile_runs_status"),
    )
    # One active run per system: a second request joins it (or is refused), never runs beside it.
    op.create_index(
        "ix_reconcile_runs_active",
        "reconcile_runs",
        ["system"],
        unique=True,
        postgresql_where=sa.text("status IN ('queued', 'running')"),
    )
    op.create_index("ix_reconcile_runs_system_id", "reconcile_runs", ["system", "id"])
    op.create_table(
        "reconcile_findings",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("run_id", sa.BigInteger, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("customer_id", sa.BigInteger),
        sa.Column("external_id", sa.Text),
        sa.Column("fields", postgresql.JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("detail", sa.Text),
        sa.Column("fix", sa.Text, nullable=False),
        sa.Column("fix_status", sa.Text, nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_reconcile_findings"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["reconcile_runs.id"], name="fk_reconcile_findings_run_id_reconcile_runs", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("run_id", "subject", name="uq_reconcile_findings_run_id_subject"),
    )
    op.create_table(
        "reconcile_seen",
        sa.Column("run_id", sa.BigInteger, nullable=False),
        sa.Column("external_id", sa.Text, nullable=False),
        sa.Column("unlinked", sa.Boolean, nullable=False),
        sa.Column("email_key", sa.Text),
        sa.Column("record", postgresql.JSONB),
        sa.Column("decided", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.PrimaryKeyConstraint("run_id", "external_id", name="pk_reconcile_seen"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["reconcile_runs.id"], name="fk_reconcile_seen_run_id_reconcile_runs", ondelete="CASCADE"
        ),
    )
    op.create_index(
        "ix_reconcile_seen_run_id_email_key",
        "reconcile_seen",
        ["run_id", "email_key"],
        postgresql_where=sa.text("unlinked"),
    )


def downgrade() -> None:
    op.drop_table("reconcile_seen")
    op.drop_table("reconcile_findings")
    op.drop_index("ix_reconcile_runs_system_id", "reconcile_runs")
    op.drop_index("ix_reconcile_runs_active", "reconcile_runs")
    op.drop_table("reconcile_runs")
    op.drop_table("sync_cursors")
