"""node_cursors.next_poll_at: when adaptive polling reads the node's feed next

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("node_cursors", schema=None) as batch_op:
        batch_op.add_column(sa.Column("next_poll_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("node_cursors", schema=None) as batch_op:
        batch_op.drop_column("next_poll_at")
