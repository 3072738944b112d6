"""node load: other clients' transfers per node, the node's own session limit, and each
link's adaptive concurrency (admission that keeps the node's own queue empty)

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("node_health") as batch:
        batch.add_column(sa.Column("session_limit", sa.Integer(), nullable=True))
    op.create_table(
        "node_load",
        sa.Column(
            "node_id",
            sa.Integer(),
            sa.ForeignKey("nodes.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("others", sa.Integer(), nullable=True),
        sa.Column("ours", sa.Integer(), nullable=True),
        sa.Column("counted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_table(
        "link_concurrency",
        sa.Column(
            "source_node_id",
            sa.Integer(),
            sa.ForeignKey("nodes.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "destination_node_id",
            sa.Integer(),
            sa.ForeignKey("nodes.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("active_limit", sa.Integer(), nullable=False),
        sa.Column("last_kbps", sa.Float(), nullable=True),
        sa.Column("last_step", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("quiet", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("bytes_mark", sa.BigInteger(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("link_concurrency")
    op.drop_table("node_load")
    with op.batch_alter_table("node_health") as batch:
        batch.drop_column("session_limit")
