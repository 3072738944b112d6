"""Suite-wide fixtures: the databases every DB test runs on (SQLite always, PostgreSQL if set)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from hstssim.cluster import SimCluster
from tests.support.sim import fast_configs


def _own_database(url: str | None) -> str | None:
    """Under pytest-xdist each worker process gets a database of its own beside the one named
    (``test`` → ``test_gw0``), since the suite empties the schema it runs on."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not url or not worker:
        return url
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_{worker}").render_as_string(hide_password=False)


POSTGRES_URL = _own_database(os.environ.get("ORCH_TEST_DATABASE_URL"))

DATABASES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgresql",
        id="postgresql",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(
                not POSTGRES_URL, reason="set ORCH_TEST_DATABASE_URL to run on PostgreSQL"
            ),
        ],
    ),
]


@pytest.fixture(scope="session", autouse=True)
def _postgres_schema_reset() -> None:
    """Start from an empty public schema: ORCH_TEST_DATABASE_URL names a database for tests
    only, and one left at another branch's migration head would refuse this branch's."""
    if not POSTGRES_URL:
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = make_url(POSTGRES_URL).database
    server = create_engine(
        make_url(POSTGRES_URL).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    with server.connect() as conn:
        if conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}) is None:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    server.dispose()
    engine = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session")
def _migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file at the migrations' head, made once: each test gets a copy (migrating a
    new file takes about 0.3 s, more than most tests)."""
    from sqlalchemy import text

    from orchestrator.db.engine import make_engine
    from orchestrator.db.migrate import upgrade

    path = tmp_path_factory.mktemp("template") / "orchestrator.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    with engine.connect() as conn:  # everything in the file itself, nothing left in the WAL
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    engine.dispose()
    return path


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL: a SQLite file of its own, or ORCH_TEST_DATABASE_URL (PostgreSQL); both
    at the migrations' head (tests that migrate start by going down to base)."""
    if request.param == "sqlite":
        path = tmp_path / "orchestrator.db"
        shutil.copyfile(request.getfixturevalue("_migrated_sqlite"), path)
        return f"sqlite:///{path}"
    assert POSTGRES_URL
    return POSTGRES_URL


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCluster]:
    """Two simulated nodes, node-a and node-b, shared by a module's tests."""
    root = tmp_path_factory.mktemp("sim")
    with SimCluster.start(fast_configs(root)) as started:
        yield started
