"""Reads that must stay index lookups as history grows (benchmarks/history_queries.py measures
them over a million jobs): a short id's range, the dashboard's latest ends across states, and
its counts, which leave the ended states out; the default job list, which leaves fan-out parts
out without leaving its index."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, update
from sqlalchemy.orm import make_transient

from orchestrator.db.tables import JobRow, utcnow
from orchestrator.domain.states import JobState
from orchestrator.services.conveyor.jobs import JobNotFound
from orchestrator.services.views.jobs import JobFilter, _hex_range, find_jobs, resolve_job_id
from orchestrator.services.views.overview import LIMITS, overview
from tests.services.conftest import Stack


def twin_with_id(stack: Stack, job_id: str, new_id: str) -> str:
    """A copy of a job under another id."""
    with stack.ctx.sessions() as session:
        twin = session.get(JobRow, job_id)
        assert twin is not None
        session.expunge(twin)
        make_transient(twin)
        twin.id, twin.idempotency_key = new_id, None
        session.add(twin)
        session.commit()
    return new_id


def test_hex_range_bounds_every_id_with_the_prefix() -> None:
    assert _hex_range("1234abc9") == ("1234abc9", "1234abca")
    assert _hex_range("1234abcf") == ("1234abcf", "1234abcg")
    assert _hex_range("00000000") == ("00000000", "00000001")
    assert _hex_range("1234ABCD") is None  # not how ids begin: LIKE alone decides
    assert _hex_range("1234-abc") is None


def test_short_ids_at_the_edges_of_their_range_resolve(stack: Stack) -> None:
    first = stack.new_job("edge")
    ending_9 = twin_with_id(stack, first, "abcdef09-1111-4111-8111-111111111111")
    ending_f = twin_with_id(stack, first, "abcdef0f-2222-4222-8222-222222222222")
    next_up = twin_with_id(stack, first, "abcdef0a-3333-4333-8333-333333333333")

    assert resolve_job_id(stack.ctx, "abcdef09") == ending_9
    assert resolve_job_id(stack.ctx, "abcdef0f-2222") == ending_f
    assert resolve_job_id(stack.ctx, "abcdef0a") == next_up
    with pytest.raises(JobNotFound):
        resolve_job_id(stack.ctx, "abcdef0b")


def test_the_dashboard_shows_the_latest_ends_across_states_and_counts_none_of_them(
    stack: Stack,
) -> None:
    now = utcnow()
    base = stack.new_job("ends")
    ends = [JobState.FAILED, JobState.NEEDS_ATTENTION] * LIMITS["problems"]
    ids = [
        twin_with_id(stack, base, f"{i:08x}-0000-4000-8000-000000000000") for i in range(len(ends))
    ]
    with stack.ctx.sessions() as session:
        for minutes_ago, (job_id, state) in enumerate(zip(ids, ends, strict=True)):
            session.execute(
                update(JobRow)
                .where(JobRow.id == job_id)
                .values(state=state, state_changed_at=now - timedelta(minutes=minutes_ago))
            )
        session.commit()
        board = overview(session, now, poll_interval=2.0)

    assert [job.id for job in board.problems] == ids[: LIMITS["problems"]]  # newest first
    assert board.count(JobState.NEEDS_ATTENTION) == len(ends) // 2
    assert board.count(JobState.QUEUED) == 1  # the job the twins were copied from
    with pytest.raises(ValueError, match="ended"):
        board.count(JobState.FAILED)


def test_the_default_job_list_walks_the_newest_first_index_not_the_parts_index(
    stack: Stack,
) -> None:
    stack.new_job("plan")
    statements: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "FROM jobs" in statement and "ORDER BY" in statement:
            statements.append((statement, parameters))

    engine = stack.ctx.sessions.kw["bind"]
    event.listen(engine, "before_cursor_execute", keep)
    try:
        assert len(find_jobs(stack.ctx, JobFilter()).items) == 1
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    (statement, parameters), *_ = statements
    assert "parent_id IS NULL" in statement
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        if not sqlite:  # an empty table: make the planner say which index it would walk
            conn.exec_driver_sql("SET enable_seqscan = off")
        explain = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
        plan = " ".join(str(row) for row in conn.exec_driver_sql(explain + statement, parameters))
    assert "ix_jobs_created" in plan, plan
    assert "ix_jobs_parent" not in plan, plan
