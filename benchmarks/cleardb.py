"""A server database reused from run to run, emptied for the next one."""

from __future__ import annotations

from typing import Any


def drop_newer_schema(engine: Any) -> None:
    """Drop every table when the database was migrated past what this tree knows (the other
    side of ``--compare-with`` ran first), so that the tree's own migrations can run."""
    from alembic.script import ScriptDirectory
    from sqlalchemy import inspect, text

    from orchestrator.db.migrate import alembic_config

    if "alembic_version" not in inspect(engine).get_table_names():
        return
    with engine.connect() as conn:
        at = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    scripts = ScriptDirectory.from_config(alembic_config())
    if at is None or at in {script.revision for script in scripts.walk_revisions()}:
        return
    if engine.dialect.name != "postgresql":
        raise SystemExit(f"the database is at migration {at}, newer than this tree: remove it")
    reset_schema(engine)


def reset_schema(engine: Any) -> None:
    """An empty public schema on PostgreSQL (every table and type dropped)."""
    from sqlalchemy import text

    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))


def clear_database(engine: Any) -> None:
    """Delete every row the last run left (the service locks stay); on PostgreSQL, vacuum
    them now, so that autovacuum of the dead rows does not run while the next run is measured
    (a run right after another was 10-15 % slower in every process)."""
    from sqlalchemy import delete, text

    from orchestrator.db.base import Base

    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name != "service_locks":
                conn.execute(delete(table))
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
