"""attempts.check_after and unsettled_checks, nodes.activity_retention_seconds, the dispatch lock

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 23:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

RETENTION = 129600  # activity_retention's default on an HSTS node: 1d 12h (node-api.md §7.5)


def upgrade() -> None:
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("check_after", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("unsettled_checks", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.create_index("ix_attempts_check_after", ["source_node_id", "check_after"])
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "activity_retention_seconds",
                sa.Integer(),
                nullable=False,
                server_default=str(RETENTION),
            )
        )
    # The row every dispatch run updates first; seeded so that concurrent first runs on a fresh
    # database wait on it instead of racing to insert it.
    op.execute("INSERT INTO service_locks (name) VALUES ('dispatch')")


def downgrade() -> None:
    op.execute("DELETE FROM service_locks WHERE name = 'dispatch'")
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.drop_column("activity_retention_seconds")
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_attempts_check_after")
        batch_op.drop_column("unsettled_checks")
        batch_op.drop_column("check_after")
