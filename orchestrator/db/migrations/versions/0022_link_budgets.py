"""link budgets: a rate budget per node pair, and each transfer's allocated share

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "link_budgets",
        sa.Column("source_node_id", sa.Integer(), nullable=False),
        sa.Column("destination_node_id", sa.Integer(), nullable=False),
        sa.Column("kbps", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_node_id"],
            ["nodes.id"],
            name=op.f("fk_link_budgets_source_node_id_nodes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["destination_node_id"],
            ["nodes.id"],
            name=op.f("fk_link_budgets_destination_node_id_nodes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "source_node_id", "destination_node_id", name=op.f("pk_link_budgets")
        ),
    )
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("allocated_kbps", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("allocated_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("policy_paused", sa.Boolean(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("allocation_note", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("allocation_note")
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_column("policy_paused")
        batch_op.drop_column("allocated_at")
        batch_op.drop_column("allocated_kbps")
    op.drop_table("link_budgets")
