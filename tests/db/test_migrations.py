"""Migrations build exactly the tables the code declares, on SQLite and PostgreSQL, and undo."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from orchestrator.db import tables  # noqa: F401  (registers the tables)
from orchestrator.db.base import Base
from orchestrator.db.engine import make_engine
from orchestrator.db.migrate import downgrade, upgrade


def test_upgrade_matches_the_models_and_downgrade_removes_everything(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        downgrade(engine, "base")
        upgrade(engine)
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "render_as_batch": True}
            )
            assert compare_metadata(context, Base.metadata) == []
        assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
        upgrade(engine)  # running it again changes nothing
        downgrade(engine, "base")
        assert not set(Base.metadata.tables) & set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_the_dispatch_lock_row_is_there_before_the_first_dispatch(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        downgrade(engine, "base")
        upgrade(engine)
        with engine.connect() as conn:
            names = conn.execute(text("SELECT name FROM service_locks")).scalars().all()
        assert names == ["dispatch"]
    finally:
        engine.dispose()
