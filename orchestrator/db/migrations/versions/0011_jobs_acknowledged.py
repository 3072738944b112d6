"""jobs.acknowledged_at and acknowledged_by: a person has seen this failure

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 02:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# Failures nobody acknowledged: what the dashboard counts, a small index whatever the history.
OPEN_FAILURE = sa.text("acknowledged_at IS NULL AND state IN ('failed', 'needs_attention')")


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("acknowledged_by", sa.String(length=128), nullable=True))
    op.create_index(
        "ix_jobs_open_failures",
        "jobs",
        ["state", "state_changed_at"],
        postgresql_where=OPEN_FAILURE,
        sqlite_where=OPEN_FAILURE,
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_open_failures", table_name="jobs")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("acknowledged_by")
        batch_op.drop_column("acknowledged_at")
