"""Alembic environment: runs on the connection handed over by orchestrator.db.migrate."""

from __future__ import annotations

from alembic import context

from orchestrator.db import tables  # noqa: F401  (registers every table on Base.metadata)
from orchestrator.db.base import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through orchestrator.db.migrate.upgrade(engine)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
