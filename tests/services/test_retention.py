"""History retention: ended jobs older than ORCH_HISTORY_DAYS are archived, then deleted; jobs
that need attention, and recent ones, stay (real nodes, SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from orchestrator.db.tables import AttemptRow, JobEventRow, JobRow, ThroughputMinuteRow
from orchestrator.domain.states import JobState
from orchestrator.services.context import utcnow
from orchestrator.services.conveyor.control import cancel_job
from orchestrator.services.conveyor.retention import prune_history
from tests.services.conftest import Stack
from tests.support.sim import write_tree
from tests.support.stack import settle


@pytest.fixture
def stack_settings(tmp_path: Path) -> dict[str, Any]:
    return {"history_days": 30.0, "archive_dir": tmp_path / "archive"}


def count(stack: Stack, table: Any) -> int:
    with stack.ctx.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def test_old_ended_jobs_are_archived_with_their_story_then_deleted(
    stack: Stack, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]  # the nodes outlive one database's run: fresh folders
    write_tree(stack.root_a, {f"old{run}/f.bin": b"old", f"new{run}/f.bin": b"new"})
    old = stack.new_job(f"old{run}")
    settle(stack.ctx, stack.tasks, [stack.a_id])
    stack.ctx.clock = lambda: utcnow() + timedelta(days=31)
    flagged = stack.new_job(f"flag{run}")
    with stack.ctx.sessions() as session:  # a job a person must look at
        session.get(JobRow, flagged).state = JobState.NEEDS_ATTENTION  # type: ignore[union-attr]
        session.commit()
    recent = stack.new_job(f"new{run}")
    cancel_job(stack.ctx, recent)  # ended, but just now
    assert count(stack, ThroughputMinuteRow) > 0

    pruned = prune_history(stack.ctx)

    assert (pruned.jobs, pruned.archived) == (1, 1)
    with stack.ctx.sessions() as session:
        left = set(session.scalars(select(JobRow.id)))
        assert left == {flagged, recent}
        assert session.scalar(select(AttemptRow.id).where(AttemptRow.job_id == old)) is None
        assert session.scalar(select(JobEventRow.id).where(JobEventRow.job_id == old)) is None
    assert count(stack, ThroughputMinuteRow) == 0  # its minutes were older than 30 days too
    (archive,) = (tmp_path / "archive").glob("jobs-*.jsonl")
    (line,) = archive.read_text().splitlines()
    kept = json.loads(line)
    assert kept["id"] == old and kept["state"] == JobState.COMPLETED
    assert [a["status"] for a in kept["attempts"]] == ["completed"]
    assert [e["to_state"] for e in kept["events"] if e["kind"] == "state"][-1] == "completed"
    assert prune_history(stack.ctx).jobs == 0  # nothing more is old enough
