"""Outages become waits: a sync whose last attempt failed and that will be tried again is
``retrying`` (it was ``failed``, which read as final).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint("ck_sync_records_status", "sync_records", type_="check")
    op.execute("UPDATE sync_records SET status = 'retrying' WHERE status = 'failed'")
    op.create_check_constraint("ck_sync_records_status", "sync_records", "status IN ('pending', 'succeeded', 'retrying', 'dead')")


def downgrade() -> None:
    op.drop_constraint("ck_sync_records_status", "sync_records", type_="check")
    op.execute("UPDATE sync_records SET status = 'failed' WHERE status = 'retrying'")
    op.create_check_constraint("ck_sync_records_status", "sync_records", "status IN ('pending', 'succeeded', 'failed', 'dead')")
