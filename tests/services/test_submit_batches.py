"""Fewer node calls per job: slots that free together go out as one submit batch (issue 16).

Dispatch sends as few submit batches per granting node as ORCH_SUBMIT_BATCH_SIZE allows, each
one upload_setup and one /files/info; a poll that frees slots wakes dispatch a moment later
(at most a tenth of the quickest transfer that ended); the sweeper re-sends a dispatch only
when none ran since the jobs were queued.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from orchestrator.db.tables import NodeCursorRow, NodeRow
from orchestrator.domain.states import JobState
from orchestrator.services.conveyor.dispatch import dispatch
from orchestrator.services.conveyor.polling import gather_slots, poll_node
from orchestrator.services.conveyor.reconcile import sweep
from orchestrator.services.views.jobs import show_job
from orchestrator.taskqueue import TaskName
from tests.services.conftest import Stack
from tests.support.sim import read_tree, wait_for, write_tree
from tests.support.stack import job_states, run_tasks, settle


@pytest.fixture
def stack_settings() -> dict[str, Any]:
    # a second poll of a node may follow within a tenth of a 1.6 s transfer: slots are held
    return {"submit_batch_size": 4, "dispatch_gather_seconds": 1.0, "poll_floor_seconds": 0.1}


@dataclass
class Wakes:
    """An enqueue that keeps each task with its publish options (countdown)."""

    sent: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)

    def __call__(self, task: str, *args: Any, **options: Any) -> None:
        self.sent.append((task, args, options))


def test_slots_freed_together_go_out_in_as_few_even_batches_as_the_size_allows(
    stack: Stack,
) -> None:
    write_tree(stack.root_a, {f"b{n}/f.txt": b"batch %d" % n for n in range(10)})
    jobs = [stack.new_job(f"b{n}") for n in range(10)]
    stack.tasks.take()

    dispatch(stack.ctx)

    batches = [args for task, args in stack.tasks.sent if task == TaskName.SUBMIT]
    assert sorted(len(b) for b in batches) == [3, 3, 4]  # not 4, 4, 2
    assert sorted(j for b in batches for j in b) == sorted(jobs)
    run_tasks(stack.ctx, stack.tasks)
    assert stack.admin_b.counters()["requests"]["POST /files/upload_setup"] == 3
    assert stack.admin_a.counters()["requests"]["POST /files/info"] == 3
    assert stack.admin_a.counters()["requests"]["POST /ops/transfers"] == 10


@pytest.mark.parametrize("floor", [0.1, 1.0])
def test_a_poll_that_frees_slots_wakes_dispatch_after_a_tenth_of_the_quickest_run(
    stack: Stack, floor: float
) -> None:
    # Held for the node only when a second poll of it can land within the gathering.
    stack.ctx.settings = stack.ctx.settings.model_copy(update={"poll_floor_seconds": floor})
    write_tree(stack.root_a, {"slow/f.bin": os.urandom(100_000), "quick/f.txt": b"q"})
    slow = stack.new_job("slow", options={"target_rate_kbps": 500})  # about 1.6 s
    run_tasks(stack.ctx, stack.tasks)
    wakes = Wakes()
    polling = replace(stack.ctx, enqueue=wakes)

    def ended(job_id: str) -> bool:
        poll_node(polling, stack.a_id, owner="test-poller")
        return job_states(stack.ctx)[job_id] == JobState.COMPLETED

    wait_for(lambda: ended(slow))
    (wake,) = [options for task, _, options in wakes.sent if task == TaskName.DISPATCH]
    assert 0.1 <= wake["countdown"] <= 0.5, wake  # a tenth of its 1.6 s or so, not 1 s
    with stack.ctx.sessions() as session:
        until = session.scalar(
            select(NodeCursorRow.gather_until).where(NodeCursorRow.node_id == stack.a_id)
        )
    assert (until is not None) == (wake["countdown"] >= floor), (until, wake)

    quick = stack.new_job("quick")  # ends within a few hundredths of a second
    # (admitted once the slow one's freed slot has gathered, a tenth of its run)
    settle(stack.ctx, stack.tasks, [], until=lambda states: states[quick] != JobState.QUEUED)
    wakes.sent.clear()
    wait_for(lambda: ended(quick))
    dispatches = [(t, o) for t, _, o in wakes.sent if t == TaskName.DISPATCH]
    assert dispatches == [(TaskName.DISPATCH, {})], "at once"


def test_the_sweeper_resends_dispatch_only_when_none_ran_since_the_jobs_were_queued(
    stack: Stack,
) -> None:
    job = stack.new_job("waits")
    stack.tasks.take()  # its wake-up is lost
    with stack.ctx.sessions() as session:  # and it cannot go: it stays QUEUED
        session.execute(update(NodeRow).where(NodeRow.id == stack.b_id).values(enabled=False))
        session.commit()
    start = stack.ctx.now()

    def at(seconds: float) -> Any:
        moment: datetime = start + timedelta(seconds=seconds)
        return replace(stack.ctx, clock=lambda: moment)

    assert sweep(at(1.0)).dispatch_sent  # queued 1 s ago (> 0.5 s), no dispatch since
    stack.tasks.take()
    dispatch(at(1.0))  # it ran: the job waits, with its reason
    assert job_states(stack.ctx)[job] == JobState.QUEUED

    assert not sweep(at(1.2)).dispatch_sent, "a dispatch ran after the job was queued"
    assert stack.tasks.take() == []
    assert sweep(at(2.0)).dispatch_sent, "none for longer than ORCH_QUEUED_SWEEP_SECONDS"
    assert [t for t, _ in stack.tasks.take()] == [TaskName.DISPATCH]


def test_a_nodes_freed_slots_wait_for_its_own_wake_up_whoever_runs_dispatch_first(
    stack: Stack,
) -> None:
    with stack.ctx.sessions() as session:
        session.execute(update(NodeRow).where(NodeRow.id == stack.a_id).values(max_outbound=2))
        session.commit()
    files = {f"w{n}/f.bin": os.urandom(100_000) for n in range(4)}
    write_tree(stack.root_a, files)
    write_tree(stack.root_b, {"back/f.txt": b"the other way"})
    first = [stack.new_job(f"w{n}", options={"target_rate_kbps": 500}) for n in range(2)]
    wave = [stack.new_job(f"w{n}") for n in (2, 3)]
    # run by node-b, so not held; lower in the queue, so it must not take a's freed slots
    pull = stack.new_job("w1", mode="pull", priority=-10, destination_path="in-pull")
    run_tasks(stack.ctx, stack.tasks)
    assert {job_states(stack.ctx)[j] for j in [*wave, pull]} == {JobState.QUEUED}  # 2 of 2

    def first_ended() -> bool:
        poll_node(stack.ctx, stack.a_id, owner="test-poller")
        return all(job_states(stack.ctx)[j] == JobState.COMPLETED for j in first)

    wait_for(first_ended)  # its polls hold a's freed slots until its own wake-up
    with stack.ctx.sessions() as session:
        until = session.scalar(
            select(NodeCursorRow.gather_until).where(NodeCursorRow.node_id == stack.a_id)
        )
    assert until is not None
    back = stack.new_job(
        "back", source_node="node-b", destination_node="node-a", destination_path="in-back"
    )
    stack.tasks.take()  # the wake-ups: this run is woken by something else, before a's own

    early = dispatch(replace(stack.ctx, clock=lambda: until - timedelta(seconds=0.01)))
    assert (early.admitted, early.held) == ([back], 2)
    assert str(early).endswith("1 still waiting, 2 held for freed slots to gather")
    assert {show_job(stack.ctx, j).waiting_reason for j in wave} == {
        "gathering the slots node-a freed, to go out as one batch"
    }
    assert "node-a" in (show_job(stack.ctx, pull).waiting_reason or ""), "their slots are kept"
    assert stack.tasks.later[-1][1:] == (TaskName.DISPATCH, ())  # sent again for the end
    assert stack.tasks.delayed[-1] == (TaskName.DISPATCH, 0.01)
    assert sweep(replace(stack.ctx, clock=lambda: until + timedelta(seconds=0.2))).dispatch_sent, (
        "a dispatch ran after the jobs were queued, but none since the gathering ended"
    )
    stack.tasks.take()
    stack.tasks.later.clear()

    on_time = dispatch(replace(stack.ctx, clock=lambda: until + timedelta(seconds=0.01)))
    assert sorted(on_time.admitted) == sorted(wave) and on_time.held == 0
    assert job_states(stack.ctx)[pull] == JobState.QUEUED
    batches = [args for task, args in stack.tasks.sent if task == TaskName.SUBMIT]
    assert [sorted(b) for b in batches] == [sorted(wave)], "one batch for both freed slots"
    assert settle(stack.ctx, stack.tasks, [stack.a_id, stack.b_id]) == dict.fromkeys(
        [*first, *wave, pull, back], JobState.COMPLETED
    )
    assert read_tree(stack.root_b / "in-w2") == {"w2/f.bin": files["w2/f.bin"]}
    assert read_tree(stack.root_b / "in-pull") == {"w1/f.bin": files["w1/f.bin"]}
    assert read_tree(stack.root_a / "in-back") == {"back/f.txt": b"the other way"}
    assert stack.admin_b.counters()["requests"]["POST /files/upload_setup"] == 2  # 2 waves


def test_a_gathering_is_kept_while_ahead_and_while_its_dispatch_runs_late(stack: Stack) -> None:
    poll_node(stack.ctx, stack.a_id, owner="test-poller")  # node-a's cursor row
    start = stack.ctx.now()

    def at(seconds: float) -> Any:
        moment: datetime = start + timedelta(seconds=seconds)
        return replace(stack.ctx, clock=lambda: moment)

    ends = start + timedelta(seconds=1)
    assert gather_slots(at(0), stack.a_id, 1.0) == ends
    assert gather_slots(at(0.5), stack.a_id, 1.0) == ends, "still ahead"
    # Ended, and no dispatch since: that run is late, and a new gathering would hold it again.
    assert gather_slots(at(1.5), stack.a_id, 1.0) == ends
    dispatch(at(1.6))
    assert gather_slots(at(1.7), stack.a_id, 1.0) == start + timedelta(seconds=2.7)
