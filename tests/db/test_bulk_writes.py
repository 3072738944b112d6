"""Many rows in one statement (db/bulk.py: inserts, compare-and-set, one value for all rows), on
SQLite and PostgreSQL: the same rows result."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import JSON, BigInteger, Column, Integer, MetaData, String, Table, select
from sqlalchemy.orm import Session

from orchestrator.db.base import MaskedText, UtcDateTime
from orchestrator.db.bulk import insert_rows, swap_rows, update_rows
from orchestrator.db.engine import make_engine, make_session_factory, session_scope
from orchestrator.domain.states import JobState

PROBE = Table(
    "bulk_probe",
    MetaData(),
    Column("id", String(36), primary_key=True),
    Column("minute", UtcDateTime(), primary_key=True),
    Column("state", String(24)),
    Column("moved", BigInteger, default=0),
    Column("files", Integer, default=0),
    Column("note", MaskedText()),
    Column("data", JSON),
    Column("at", UtcDateTime()),
)
T0 = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)


@pytest.fixture
def session(database_url: str) -> Iterator[Session]:
    engine = make_engine(database_url)
    PROBE.drop(engine, checkfirst=True)
    PROBE.create(engine)
    try:
        with session_scope(make_session_factory(engine)) as session:
            yield session
    finally:
        PROBE.drop(engine, checkfirst=True)
        engine.dispose()


def rows(session: Session) -> dict[str, tuple[Any, ...]]:
    found = session.execute(select(PROBE).order_by(PROBE.c.id)).all()
    return {r.id: (r.state, r.moved, r.files, r.note, r.data, r.at) for r in found}


def test_inserted_rows_are_masked_serialised_and_added_to_on_their_key(session: Session) -> None:
    columns = ("id", "minute", "state", "moved", "files", "note", "data", "at")
    insert_rows(
        session,
        PROBE,
        columns,
        [
            ("a", T0, JobState.RUNNING, 5, 1, "password=hunter2hunter2 refused", {"k": 1}, T0),
            ("b", T0, "queued", 7, 0, "plain", {}, None),
        ],
    )
    insert_rows(
        session,
        PROBE,
        ("id", "minute", "moved", "files"),
        [("a", T0, 10, 2), ("c", T0, 3, 0)],
        adding=("id", "minute"),
    )

    found = rows(session)
    assert found["a"][:3] == ("running", 15, 3), "added to the existing row"
    assert "hunter2hunter2" not in found["a"][3] and found["a"][3].startswith("password=")
    assert found["a"][4:] == ({"k": 1}, T0)
    assert found["b"] == ("queued", 7, 0, "plain", {}, None)
    assert found["c"][1:3] == (3, 0), "a new key is inserted"


def test_a_swap_writes_only_the_rows_still_in_their_expected_state(session: Session) -> None:
    insert_rows(
        session,
        PROBE,
        ("id", "minute", "state", "moved", "files"),
        [("a", T0, "running", 0, 0), ("b", T0, "submitted", 0, 0), ("c", T0, "canceled", 0, 0)],
    )
    later = T0 + timedelta(minutes=5)

    written = swap_rows(
        session,
        PROBE,
        "id",
        "state",
        ("moved", "files"),
        [("a", "running", 100, 1), ("b", "submitted", 200, 2), ("c", "running", 300, 3)],
        {"state": JobState.COMPLETED, "at": later},
        returning=("minute",),
    )

    assert sorted(written) == [("a", T0), ("b", T0)], "c was no longer running"
    found = rows(session)
    assert found["a"] == ("completed", 100, 1, None, None, later)
    assert found["b"] == ("completed", 200, 2, None, None, later)
    assert found["c"] == ("canceled", 0, 0, None, None, None), "a missed row is left alone"
    update_rows(session, PROBE, "id", ("moved",), [("c", 300)])
    assert rows(session)["c"][:2] == ("canceled", 300)


def test_columns_of_one_value_for_all_rows_are_bound_once_and_processed(
    session: Session,
) -> None:
    insert_rows(
        session,
        PROBE,
        ("id", "minute", "moved", "files"),
        [("a", T0, 1, 0), ("b", T0, 2, 0)],
        same={"state": JobState.PAUSED, "note": "token=abcdefgh12345678", "data": {"x": [1]}},
    )
    update_rows(session, PROBE, "id", ("files",), [("a", 4), ("b", 5)], {"at": T0})

    found = rows(session)
    assert [found[k][:3] for k in "ab"] == [("paused", 1, 4), ("paused", 2, 5)]
    assert {found[k][3] for k in "ab"} == {"token=***"}, "masked"
    assert [found[k][4:] for k in "ab"] == [({"x": [1]}, T0)] * 2


STAMPED = Table(
    "bulk_stamped",
    MetaData(),
    Column("id", String(36), primary_key=True),
    Column("state", String(24)),
    Column("moved", BigInteger, default=0),
    Column("stamp", UtcDateTime(), onupdate=lambda: T0 + timedelta(days=1)),
)


def test_a_column_the_rows_do_not_name_is_left_alone_on_every_database(database_url: str) -> None:
    # A Python-side onupdate (jobs.updated_at: the wall clock) fires in a Core UPDATE only:
    # one database would stamp the rows and the other not.
    engine = make_engine(database_url)
    STAMPED.drop(engine, checkfirst=True)
    STAMPED.create(engine)
    try:
        with session_scope(make_session_factory(engine)) as session:
            insert_rows(
                session, STAMPED, ("id", "state", "moved", "stamp"), [("a", "running", 0, T0)]
            )
            insert_rows(
                session, STAMPED, ("id", "state", "moved", "stamp"), [("b", "running", 0, T0)]
            )
            update_rows(session, STAMPED, "id", ("moved",), [("a", 5)])
            swap_rows(session, STAMPED, "id", "state", ("moved",), [("b", "running", 7)], {})
            found = session.execute(
                select(STAMPED.c.id, STAMPED.c.moved, STAMPED.c.stamp).order_by(STAMPED.c.id)
            ).all()
    finally:
        STAMPED.drop(engine, checkfirst=True)
        engine.dispose()
    assert [tuple(r) for r in found] == [("a", 5, T0), ("b", 7, T0)]


def test_an_insert_either_database_would_write_differently_is_refused(session: Session) -> None:
    with pytest.raises(ValueError, match="moved, files"):  # Python defaults, left out
        insert_rows(session, PROBE, ("id", "minute"), [("a", T0)])
    with pytest.raises(ValueError, match="only numbers"):  # text summed on a conflict
        insert_rows(
            session,
            PROBE,
            ("id", "minute", "moved", "files"),
            [("a", T0, 1, 1)],
            same={"state": "x"},
            adding=("id", "minute"),
        )
    assert rows(session) == {}
