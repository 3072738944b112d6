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


# PostgreSQL fills the column in one statement (a million jobs in seconds, not one UPDATE each).
POSTGRES_FILL = """
UPDATE jobs SET source_paths_text = COALESCE((
    SELECT string_agg(COALESCE(item ->> 'source', ''), E'\\n' ORDER BY position)
    FROM json_array_elements(
        CASE WHEN json_typeof(source_paths) = 'array' THEN source_paths ELSE '[]'::json END
    ) WITH ORDINALITY AS listed(item, position)
    WHERE json_typeof(item) = 'object'
), '')
"""


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_paths_text", sa.Text(), nullable=True))
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text(POSTGRES_FILL))
        return
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
        conn.execute(
            jobs.update().where(jobs.c.id == sa.bindparam("job_id")),
            [{"job_id": job_id, "source_paths_text": _text(paths)} for job_id, paths in rows],
        )
        last = rows[-1][0]


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("source_paths_text")
