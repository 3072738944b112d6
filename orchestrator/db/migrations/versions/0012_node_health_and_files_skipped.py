"""node_health (the slow reachability check of every node), jobs.files_skipped

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "node_health",
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reachable", sa.Boolean(), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=True),
        sa.Column("activity_logging", sa.Boolean(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["node_id"], ["nodes.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("node_id"),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("files_skipped", sa.Integer(), nullable=False, server_default="0")
        )
    # Jobs that ended before the column existed: their last attempt knows.
    op.execute(
        "UPDATE jobs SET files_skipped = COALESCE((SELECT a.files_skipped FROM attempts a"
        " WHERE a.job_id = jobs.id ORDER BY a.number DESC LIMIT 1), 0)"
    )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("files_skipped")
    op.drop_table("node_health")
