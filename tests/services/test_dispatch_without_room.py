"""A dispatch run with no room on any link of the queued jobs admits nothing and reads only the
jobs without a waiting reason; the others keep theirs until a run with room reads them."""

from __future__ import annotations

from sqlalchemy import update

from orchestrator.db.tables import JobRow
from orchestrator.domain.states import JobState
from orchestrator.services.conveyor.dispatch import dispatch
from orchestrator.services.conveyor.jobs import get_job
from orchestrator.services.nodes.registry import update_node
from orchestrator.taskqueue import TaskName
from tests.services.conftest import Stack

FULL = "source node node-a is at its limit (1 active)"
KEPT = "a reason no run of this test writes"


def state_and_reason(stack: Stack, job_id: str) -> tuple[str, str | None]:
    with stack.ctx.sessions() as session:
        row = get_job(session, job_id)
        return row.state, row.waiting_reason


def mark(stack: Stack, *job_ids: str) -> None:
    """Give jobs a reason dispatch never writes: a run that reads them rewrites it."""
    with stack.ctx.sessions() as session:
        session.execute(update(JobRow).where(JobRow.id.in_(job_ids)).values(waiting_reason=KEPT))
        session.commit()


def submits(stack: Stack) -> list[tuple[str, tuple[object, ...]]]:
    return [(task, args) for task, args in stack.tasks.take() if task == TaskName.SUBMIT]


def test_a_run_without_room_gives_only_new_jobs_a_reason_then_room_admits_by_priority(
    stack: Stack,
) -> None:
    update_node(stack.ctx, "node-a", {"max_outbound": 1})
    holder = stack.new_job("h")
    assert dispatch(stack.ctx).admitted == [holder]  # never submitted: it keeps its slot
    stack.tasks.take()
    low, high = stack.new_job("l", priority=1), stack.new_job("x", priority=5)
    assert dispatch(stack.ctx).admitted == []
    assert state_and_reason(stack, low) == (JobState.QUEUED, FULL)
    mark(stack, low, high)
    new = stack.new_job("n", priority=3)

    summary = dispatch(stack.ctx)

    assert summary.admitted == [] and summary.waiting == 3
    assert state_and_reason(stack, new) == (JobState.QUEUED, FULL)
    assert state_and_reason(stack, low) == (JobState.QUEUED, KEPT)
    assert state_and_reason(stack, high) == (JobState.QUEUED, KEPT)
    assert submits(stack) == []

    update_node(stack.ctx, "node-a", {"max_outbound": 2})  # one slot frees
    summary = dispatch(stack.ctx)

    assert summary.admitted == [high]
    assert state_and_reason(stack, high) == (JobState.ADMITTED, None)
    assert state_and_reason(stack, new) == (JobState.QUEUED, FULL.replace("(1", "(2"))
    assert state_and_reason(stack, low) == (JobState.QUEUED, FULL.replace("(1", "(2"))
    assert [args for _, args in submits(stack)] == [(high,)]


def test_room_on_another_link_reads_every_queued_job(stack: Stack) -> None:
    update_node(stack.ctx, "node-a", {"max_outbound": 1})
    holder = stack.new_job("h")
    assert dispatch(stack.ctx).admitted == [holder]
    waiting = stack.new_job("w")
    dispatch(stack.ctx)
    mark(stack, waiting)
    back = stack.new_job(  # node-b → node-a has room
        "b", source_node="node-b", destination_node="node-a", priority=-1
    )

    summary = dispatch(stack.ctx)

    assert summary.admitted == [back]
    assert state_and_reason(stack, waiting) == (JobState.QUEUED, FULL)
