"""jobs.parent_id, jobs.is_parent, schedules.destinations: fan-out (one job, several destinations)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Columns added in place, outside a batch: on SQLite a batch with an index copies the table,
    # and dropping the old jobs table takes (ON DELETE CASCADE) every label, event and attempt
    # that referenced it. No foreign key on parent_id for the same reason: SQLite cannot add
    # one without that copy.
    op.add_column("jobs", sa.Column("parent_id", sa.String(length=36), nullable=True))
    op.add_column(
        "jobs", sa.Column("is_parent", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    # Partial: a plan for "parent_id IS NULL" (every default job list) must not take it.
    op.create_index(
        "ix_jobs_parent",
        "jobs",
        ["parent_id"],
        unique=False,
        postgresql_where=sa.text("parent_id IS NOT NULL"),
        sqlite_where=sa.text("parent_id IS NOT NULL"),
    )
    op.add_column("schedules", sa.Column("destinations", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("schedules", schema=None) as batch_op:
        batch_op.drop_column("destinations")
    op.drop_index("ix_jobs_parent", table_name="jobs")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("is_parent")
        batch_op.drop_column("parent_id")
