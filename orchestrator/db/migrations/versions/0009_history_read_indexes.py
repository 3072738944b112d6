"""jobs: indexes for newest-first lists and the latest ends per state

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 01:45:00
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_jobs_created", "jobs", ["created_at", "id"])
    op.create_index("ix_jobs_state_changed", "jobs", ["state", "state_changed_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_state_changed", table_name="jobs")
    op.drop_index("ix_jobs_created", table_name="jobs")
