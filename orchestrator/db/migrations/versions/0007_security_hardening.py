"""token expiry, dashboard sessions, job labels as rows, what an idempotency key stands for

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

KEY_LENGTH, VALUE_LENGTH = 64, 256  # the label bounds of orchestrator.domain.jobs


def upgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_digest", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("created_by_token", sa.Integer(), nullable=True))
    op.create_table(
        "dashboard_sessions",
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["token_id"],
            ["api_tokens.id"],
            name=op.f("fk_dashboard_sessions_token_id_api_tokens"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("secret_hash", name=op.f("pk_dashboard_sessions")),
    )
    with op.batch_alter_table("dashboard_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_dashboard_sessions_expires_at", ["expires_at"], unique=False)
    labels = op.create_table(
        "job_labels",
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("key", sa.String(length=KEY_LENGTH), nullable=False),
        sa.Column("value", sa.String(length=VALUE_LENGTH), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_labels_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "key", name=op.f("pk_job_labels")),
    )
    with op.batch_alter_table("job_labels", schema=None) as batch_op:
        batch_op.create_index("ix_job_labels_key_value", ["key", "value"], unique=False)
    _copy_labels(labels)


def _copy_labels(labels: sa.Table) -> None:
    """Existing jobs' labels as rows. A label past today's bounds (stored before there were
    any) stays in the job's JSON but is not indexed: a filter cannot find it."""
    jobs = sa.table("jobs", sa.column("id", sa.String()), sa.column("labels", sa.JSON()))
    conn = op.get_bind()
    batch: list[dict[str, str]] = []
    for job_id, found in conn.execute(sa.select(jobs.c.id, jobs.c.labels)).all():
        for key, value in (found or {}).items():
            fits = isinstance(value, str) and len(value) <= VALUE_LENGTH
            if fits and 1 <= len(key) <= KEY_LENGTH:
                batch.append({"job_id": job_id, "key": key, "value": value})
        if len(batch) >= 1000:
            op.bulk_insert(labels, batch)
            batch = []
    if batch:
        op.bulk_insert(labels, batch)


def downgrade() -> None:
    with op.batch_alter_table("job_labels", schema=None) as batch_op:
        batch_op.drop_index("ix_job_labels_key_value")
    op.drop_table("job_labels")
    with op.batch_alter_table("dashboard_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_dashboard_sessions_expires_at")
    op.drop_table("dashboard_sessions")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("created_by_token")
        batch_op.drop_column("request_digest")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("expires_at")
