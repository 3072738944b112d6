"""quiet node counts: how many counts in a row found no other client's transfer on a node, so
such nodes are asked less often

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("node_load") as batch:
        batch.add_column(sa.Column("quiet", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("node_load") as batch:
        batch.drop_column("quiet")
