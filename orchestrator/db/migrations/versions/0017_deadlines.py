"""Deadlines: jobs.deadline, eta and at_risk; schedules.deadline_after_seconds; link_rates

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deadline", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("eta", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("at_risk", sa.Boolean(), nullable=False, server_default="0"))
    with op.batch_alter_table("schedules", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deadline_after_seconds", sa.Integer(), nullable=True))
    op.create_table(
        "link_rates",
        sa.Column("source_node_id", sa.Integer(), nullable=False),
        sa.Column("destination_node_id", sa.Integer(), nullable=False),
        sa.Column("bytes_per_second", sa.Float(), nullable=False),
        sa.Column("transfers", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_node_id"],
            ["nodes.id"],
            name=op.f("fk_link_rates_source_node_id_nodes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["destination_node_id"],
            ["nodes.id"],
            name=op.f("fk_link_rates_destination_node_id_nodes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "source_node_id", "destination_node_id", name=op.f("pk_link_rates")
        ),
    )


def downgrade() -> None:
    op.drop_table("link_rates")
    with op.batch_alter_table("schedules", schema=None) as batch_op:
        batch_op.drop_column("deadline_after_seconds")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("at_risk")
        batch_op.drop_column("eta")
        batch_op.drop_column("deadline")
