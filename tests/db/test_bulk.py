"""update_rows writes what the ORM would: its PostgreSQL path (unnest of arrays) must neither
shorten a value nor read a naive time in the session's time zone."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import cast

import pytest
from sqlalchemy import Engine, Table, event, select
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.orm import Session

from orchestrator.db.bulk import BinaryArray, update_rows
from orchestrator.db.tables import AttemptRow, JobRow, NodeRow
from orchestrator.domain.states import AttemptState
from tests.support.stack import fresh_database

ATTEMPTS = cast(Table, AttemptRow.__table__)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = fresh_database(database_url)
    if engine.dialect.name == "postgresql":
        # A server whose time zone is not UTC: naive times must still be read as UTC.
        @event.listens_for(engine, "connect")
        def _zone(dbapi_connection: object, _record: object) -> None:
            cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
            cursor.execute("SET TIME ZONE 'America/New_York'")
            cursor.close()

        engine.dispose()
    yield engine
    engine.dispose()


def an_attempt(session: Session, node_name: str = "n") -> str:
    node = NodeRow(name=node_name, base_url="https://n", auth_kind="node_user", username="u")
    node.secret_encrypted = b""
    session.add(node)
    session.flush()
    job_id = str(uuid.uuid4())
    session.add(
        JobRow(
            id=job_id,
            source_node_id=node.id,
            destination_node_id=node.id,
            source_paths=[],
            destination_path="/",
            state="running",
        )
    )
    session.flush()
    attempt_id = str(uuid.uuid4())
    session.add(
        AttemptRow(id=attempt_id, job_id=job_id, number=1, source_node_id=node.id, status="x")
    )
    session.commit()
    return attempt_id


def test_a_naive_time_is_written_as_utc_as_the_column_type_writes_it(engine: Engine) -> None:
    with Session(engine) as session:
        attempt_id = an_attempt(session)
        naive, aware = datetime(2024, 1, 1, 12), datetime(2024, 1, 2, 12, tzinfo=UTC)
        update_rows(
            session, ATTEMPTS, "id", ("ended_at", "started_at"), [(attempt_id, naive, aware)]
        )
        session.commit()
        ended, started = session.execute(
            select(AttemptRow.ended_at, AttemptRow.started_at).where(AttemptRow.id == attempt_id)
        ).one()
    assert ended == datetime(2024, 1, 1, 12, tzinfo=UTC)
    assert started == aware


def test_a_value_too_long_for_its_column_is_refused_not_cut(engine: Engine) -> None:
    with Session(engine) as session:
        attempt_id = an_attempt(session)
        long_id = "r" * 200  # remote_id is String(128)
        if engine.dialect.name == "sqlite":
            pytest.skip("SQLite keeps any length (the ORM does too)")
        with pytest.raises((DBAPIError, StatementError)):
            update_rows(session, ATTEMPTS, "id", ("remote_id",), [(attempt_id, long_id)])
        session.rollback()
        assert session.scalar(select(AttemptRow.remote_id)) is None


def test_mixed_python_types_of_one_column_are_written_as_that_column_holds_them(
    engine: Engine,
) -> None:
    # PostgreSQL gets each column as one binary array, whose elements share one type.
    with Session(engine) as session:
        first, second = an_attempt(session, "n1"), an_attempt(session, "n2")
        update_rows(
            session,
            ATTEMPTS,
            "id",
            ("rate_kbps", "status"),
            [(first, 1000, AttemptState.RUNNING), (second, 2.5, "completed")],
        )
        session.commit()
        rows = session.execute(select(AttemptRow.id, AttemptRow.rate_kbps, AttemptRow.status))
        written = {key: (rate, status) for key, rate, status in rows}
    assert written == {
        first: (1000.0, "running"),
        second: (2.5, "completed"),
    }


def test_postgresql_gets_the_arrays_in_binary(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("binary arrays are psycopg's")
    from psycopg.adapt import PyFormat
    from psycopg.types.array import ListBinaryDumper

    with engine.connect() as connection:
        adapters = connection.connection.dbapi_connection.adapters  # type: ignore[union-attr]
        assert adapters.get_dumper(BinaryArray, PyFormat.AUTO) is ListBinaryDumper
