"""jobs.source_paths_text: the source paths as plain text, for a path search on any database

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 02:00:00
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

BATCH = 500
jobs = sa.table(
    "jobs",
    sa.column("id", sa.String),
    sa.column("source_paths", sa.JSON),
    sa.column("source_paths_text", sa.Text),
)


def _text(paths: object) -> str:
    if isinstance(paths, str):  # some drivers hand JSON columns back as text
        paths = json.loads(paths)
    items = paths if isinstance(paths, list) else []
    return "\n".join(str(p.get("source", "")) for p in items if isinstance(p, dict))


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_paths_text", sa.Text(), nullable=True))
    conn = op.get_bind()
    last = ""
    while True:
        rows = conn.execute(
            sa.select(jobs.c.id, jobs.c.source_paths)
            .where(jobs.c.id > last)
            .order_by(jobs.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        for job_id, paths in rows:
            conn.execute(
                jobs.update().where(jobs.c.id == job_id).values(source_paths_text=_text(paths))
            )
        last = rows[-1][0]


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("source_paths_text")
