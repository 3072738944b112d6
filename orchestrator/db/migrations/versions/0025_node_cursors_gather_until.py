"""node_cursors.gather_until: slots a poll of the node freed are held for one submit batch
until then

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("node_cursors") as batch:
        batch.add_column(sa.Column("gather_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("node_cursors") as batch:
        batch.drop_column("gather_until")
