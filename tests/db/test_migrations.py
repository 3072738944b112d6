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


def test_0007_and_0010_index_the_labels_and_paths_of_existing_jobs(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        downgrade(engine, "base")
        upgrade(engine, "0006")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO nodes (id, name, base_url, auth_kind, username, "
                    "secret_encrypted, insecure, root_path, max_outbound, max_inbound, enabled, "
                    "created_at, updated_at) VALUES (1, 'n', 'https://n', 'node_user', 'u', "
                    ":blob, false, '/', 1, 1, true, :at, :at)"
                ),
                {"blob": b"x", "at": "2026-01-01 00:00:00+00:00"},
            )
            old_jobs = (
                (
                    "j1",
                    '{"team": "media", "k": "v"}',
                    '[{"source": "a/b"}, {"source": "\u00e9t\u00e9"}]',
                ),
                ("j2", "{}", "[]"),
            )
            for job_id, labels, paths in old_jobs:
                conn.execute(
                    text(
                        "INSERT INTO jobs (id, source_node_id, source_paths, "
                        "destination_node_id, destination_path, options, priority, labels, "
                        "state, attempt_count, max_attempts, cancel_requested, "
                        "bytes_transferred, files_completed, created_at, updated_at, "
                        "state_changed_at, submit_failures, source_root) VALUES (:id, 1, :paths, "
                        "1, '/x', '{}', 0, :labels, 'queued', 0, 3, false, 0, 0, :at, :at, "
                        ":at, 0, '/')"
                    ),
                    {
                        "id": job_id,
                        "labels": labels,
                        "paths": paths,
                        "at": "2026-01-01 00:00:00+00:00",
                    },
                )
        upgrade(engine)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT job_id, key, value FROM job_labels")).all()
        assert sorted(tuple(r) for r in rows) == [("j1", "k", "v"), ("j1", "team", "media")]
        with engine.connect() as conn:
            texts = dict(conn.execute(text("SELECT id, source_paths_text FROM jobs")).all())
        assert texts == {"j1": "a/b\nété", "j2": ""}, "one path a line, for the path search"
    finally:
        with engine.begin() as conn:
            for table in ("job_labels", "jobs", "nodes"):
                conn.execute(text(f"DELETE FROM {table}"))
        downgrade(engine, "base")
        engine.dispose()
