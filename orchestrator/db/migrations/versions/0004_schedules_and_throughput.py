"""schedules and throughput

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 11:22:13.296915
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("source_node_id", sa.Integer(), nullable=False),
        sa.Column("source_paths", sa.JSON(), nullable=False),
        sa.Column("destination_node_id", sa.Integer(), nullable=False),
        sa.Column("destination_path", sa.String(length=1024), nullable=False),
        sa.Column("cron", sa.String(length=128), nullable=True),
        sa.Column("interval_seconds", sa.Integer(), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("overlap", sa.String(length=8), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("alerts", sa.JSON(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("managed_by", sa.String(length=16), nullable=False),
        sa.Column("done_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("skipped_slots", sa.Integer(), nullable=False),
        sa.Column("last_skipped_slot", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["destination_node_id"],
            ["nodes.id"],
            name=op.f("fk_schedules_destination_node_id_nodes"),
        ),
        sa.ForeignKeyConstraint(
            ["source_node_id"], ["nodes.id"], name=op.f("fk_schedules_source_node_id_nodes")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedules")),
    )
    op.create_table(
        "throughput_minutes",
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source_node_id", sa.Integer(), nullable=False),
        sa.Column("destination_node_id", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("files", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["destination_node_id"],
            ["nodes.id"],
            name=op.f("fk_throughput_minutes_destination_node_id_nodes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["source_node_id"],
            ["nodes.id"],
            name=op.f("fk_throughput_minutes_source_node_id_nodes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "minute", "source_node_id", "destination_node_id", name=op.f("pk_throughput_minutes")
        ),
    )


def downgrade() -> None:
    op.drop_table("throughput_minutes")
    op.drop_table("schedules")
