"""The engine factory on SQLite (pragmas) and PostgreSQL (when configured)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.db.engine import make_engine, make_session_factory, session_scope


def insert_then_fail(factory: sessionmaker[Session], table: str) -> None:
    with session_scope(factory) as session:
        session.execute(text(f"INSERT INTO {table} (v) VALUES (2)"))
        raise RuntimeError("roll back")


def test_engine_connects_and_transactions_commit_or_roll_back(database_url: str) -> None:
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    table = "engine_probe"
    try:
        with session_scope(factory) as session:
            session.execute(text(f"CREATE TABLE IF NOT EXISTS {table} (v INTEGER)"))
            session.execute(text(f"DELETE FROM {table}"))
        with session_scope(factory) as session:
            session.execute(text(f"INSERT INTO {table} (v) VALUES (1)"))
        with pytest.raises(RuntimeError, match="roll back"):
            insert_then_fail(factory, table)
        with session_scope(factory) as session:
            assert session.execute(text(f"SELECT v FROM {table}")).scalars().all() == [1]
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
        engine.dispose()


def test_sqlite_gets_wal_and_foreign_keys(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/p.db")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()
