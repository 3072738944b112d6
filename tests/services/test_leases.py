"""Destination leases: a job whose destination paths overlap those of a job under way waits
behind it, says so, and goes once that job ends."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update

from orchestrator.db.tables import JobRow
from orchestrator.domain.jobs import JobSpec
from orchestrator.domain.schedules import ScheduleSpec
from orchestrator.domain.states import JobState
from orchestrator.services.conveyor.control import cancel_job
from orchestrator.services.conveyor.dispatch import dispatch
from orchestrator.services.conveyor.jobs import create_job, get_job
from orchestrator.services.events import events_of
from orchestrator.services.schedules.runs import run_now
from orchestrator.services.schedules.store import create_schedule
from tests.services.conftest import Stack
from tests.support.sim import write_tree
from tests.support.stack import run_tasks, settle


def job(stack: Stack, source: str, destination: str, *, to: str = "node-b", **spec: object) -> str:
    """A job copying ``source`` into the folder ``destination`` of node ``to``."""
    data = {
        "source_node": "node-b" if to == "node-a" else "node-a",
        "source_paths": [source],
        "destination_node": to,
        "destination_path": destination,
        **spec,
    }
    return create_job(stack.ctx, JobSpec.model_validate(data)).job.id


def behind(job_id: str, destination: str) -> str:
    return f"behind job {job_id[:8]} (overlapping destination node-b:{destination})"


def state_and_reason(stack: Stack, job_id: str) -> tuple[str, str | None]:
    with stack.ctx.sessions() as session:
        row = get_job(session, job_id)
        return row.state, row.waiting_reason


def admitted_at(stack: Stack, job_id: str) -> datetime:
    with stack.ctx.sessions() as session:
        (moment,) = [e.at for e in events_of(session, job_id) if e.to_state == "admitted"]
        return moment


def test_a_job_to_the_same_folder_waits_until_the_one_before_fails_then_completes(
    stack: Stack,
) -> None:
    write_tree(stack.root_a, {"ls/f.bin": b"x" * 20_000})
    stack.admin_a.settings(max_retries=0)
    stack.admin_a.fault(kind="fail_transfers", error_code=5, count=1)
    first, second, third = (job(stack, "ls", "in-ls") for _ in range(3))

    run_tasks(stack.ctx, stack.tasks)

    assert state_and_reason(stack, first)[0] != JobState.QUEUED
    assert state_and_reason(stack, second) == (JobState.QUEUED, behind(first, "/in-ls"))
    assert state_and_reason(stack, third) == (JobState.QUEUED, behind(first, "/in-ls"))

    states = settle(
        stack.ctx, stack.tasks, [stack.a_id], until=lambda s: s[first] == JobState.FAILED
    )
    assert states[second] != JobState.QUEUED
    assert state_and_reason(stack, third) == (JobState.QUEUED, behind(second, "/in-ls"))

    states = settle(stack.ctx, stack.tasks, [stack.a_id])
    assert (states[second], states[third]) == (JobState.COMPLETED, JobState.COMPLETED)
    with stack.ctx.sessions() as session:
        second_done = get_job(session, second).finished_at
    assert second_done is not None and admitted_at(stack, third) >= second_done
    assert state_and_reason(stack, third)[1] is None


def test_canceling_the_holder_admits_the_next_at_once(stack: Stack) -> None:
    first, second = job(stack, "c", "in-c"), job(stack, "c", "in-c/")
    dispatch(stack.ctx)
    stack.tasks.take()  # its submit is never run: the job stays admitted
    assert state_and_reason(stack, second) == (JobState.QUEUED, behind(first, "/in-c"))

    cancel_job(stack.ctx, first)
    run_tasks(stack.ctx, stack.tasks)  # the cancel's wake-up

    assert state_and_reason(stack, second)[0] not in (JobState.QUEUED, JobState.ADMITTED)


def test_only_overlapping_trees_wait_and_a_blocked_job_holds_back_no_other(stack: Stack) -> None:
    held = job(stack, "x", "in")  # writes node-b:/in/x
    dispatch(stack.ctx)
    with stack.ctx.sessions() as session:  # a retry pending: its partial files are still there
        session.execute(update(JobRow).where(JobRow.id == held).values(state=JobState.RETRY_WAIT))
        session.commit()
    blocked = job(stack, "x", "in", priority=9)  # the same file
    below = job(stack, "y", "in/x/deep", priority=8)  # inside the folder it writes
    replication = {"source_node": "node-a", "destination_node": "node-b", "cron": "0 * * * *"}
    create_schedule(
        stack.ctx,
        ScheduleSpec(id="mirror", source_paths=["out/x"], destination_path="in", **replication),
    )
    scheduled = run_now(stack.ctx, "mirror").job.id  # writes /in/x too
    sibling = job(stack, "x", "inbox")  # /inbox is not under /in
    other_name = job(stack, "z", "/in")  # same folder, another name
    other_node = job(stack, "x", "in", to="node-a")
    pair = [job(stack, "p", "in-p", priority=1), job(stack, "q", "in-p/p", priority=1)]

    dispatch(stack.ctx)

    assert state_and_reason(stack, blocked) == (JobState.QUEUED, behind(held, "/in"))
    assert state_and_reason(stack, below) == (JobState.QUEUED, behind(held, "/in"))
    assert state_and_reason(stack, scheduled) == (JobState.QUEUED, behind(held, "/in"))
    for free in (sibling, other_name, other_node, pair[0]):
        assert state_and_reason(stack, free) == (JobState.ADMITTED, None)
    # Queued together: the first admitted in the run leases its tree, the second waits.
    assert state_and_reason(stack, pair[1]) == (JobState.QUEUED, behind(pair[0], "/in-p"))
