"""Adaptive polling on a fake clock: a poll of the real node plans the next one from the node's
open transfers, and the tick sends it only once that time has come (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from orchestrator.db.tables import AttemptRow, JobRow, NodeCursorRow
from orchestrator.domain.states import JobState
from orchestrator.services.conveyor import pacing
from orchestrator.services.conveyor.dispatch import dispatch
from orchestrator.services.conveyor.polling import poll_node, send_due_polls, send_polls
from orchestrator.services.conveyor.submission import Outcome, submit
from orchestrator.taskqueue import TaskName
from tests.services.conftest import Stack
from tests.support.sim import write_tree

T0 = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)
BASE = 2.0


@pytest.fixture
def stack_settings() -> dict[str, Any]:
    return {"poll_interval": BASE, "poll_floor_seconds": 0.5, "poll_ceiling_intervals": 3.0}


class Clock:
    """Time that moves only when the test says."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def at(self, seconds: float) -> None:
        self.now = T0 + timedelta(seconds=seconds)


@pytest.fixture
def clock(stack: Stack) -> Clock:
    clock = Clock()
    stack.ctx.clock = clock
    return clock


def open_transfer(stack: Stack, status: str, **counters: Any) -> str:
    """A RUNNING job whose attempt the node is said to hold, as the last poll at T0 saw it.

    The node does not know its remote id, so the feed never mentions it: only the database's
    counters plan the next poll.
    """
    job_id = stack.new_job("anything")
    with stack.ctx.sessions() as session:
        job = session.get(JobRow, job_id)
        assert job is not None
        job.state, job.attempt_count = JobState.RUNNING.value, 1
        session.add(
            AttemptRow(
                id=str(uuid.uuid4()),
                job_id=job_id,
                number=1,
                source_node_id=stack.a_id,
                remote_id=f"not-on-the-node-{uuid.uuid4().hex[:8]}",
                status=status,
                created_at=T0 - timedelta(seconds=30),
                submitted_at=T0 - timedelta(seconds=30),
                last_seen_at=T0,
                **counters,
            )
        )
        session.commit()
    return job_id


def next_poll_in(stack: Stack) -> float:
    with stack.ctx.sessions() as session:
        at = session.scalar(
            select(NodeCursorRow.next_poll_at).where(NodeCursorRow.node_id == stack.a_id)
        )
    assert at is not None
    return (at - T0).total_seconds()


def polls_sent(stack: Stack) -> list[int]:
    return [int(args[0]) for task, args in stack.tasks.take() if task == TaskName.POLL]


def test_a_transfer_about_to_end_brings_its_node_forward(stack: Stack, clock: Clock) -> None:
    # 87,500 bytes left at 1,000 kbps: 0.7 s.
    open_transfer(
        stack, "running", bytes_transferred=912_500, bytes_expected=1_000_000, rate_kbps=1000.0
    )
    poll_node(stack.ctx, stack.a_id, owner="test-poller")
    assert next_poll_in(stack) == pytest.approx(0.7)

    stack.tasks.take()
    clock.at(0.6)
    send_due_polls(stack.ctx)
    assert polls_sent(stack) == []
    clock.at(0.75)
    send_due_polls(stack.ctx)
    assert polls_sent(stack) == [stack.a_id]
    send_due_polls(stack.ctx)  # claimed: the next tick does not send it again
    assert polls_sent(stack) == []


def test_a_node_where_nothing_can_end_soon_waits_for_the_ceiling(
    stack: Stack, clock: Clock
) -> None:
    open_transfer(stack, "paused", bytes_transferred=10, bytes_expected=1_000_000, rate_kbps=0.0)
    # 60 s left at its rate.
    open_transfer(stack, "running", bytes_transferred=0, bytes_expected=750_000, rate_kbps=100.0)
    poll_node(stack.ctx, stack.a_id, owner="test-poller")
    assert next_poll_in(stack) == pytest.approx(3 * BASE)

    stack.tasks.take()
    for second in (BASE, 2 * BASE, 3 * BASE - 0.1):
        clock.at(second)
        send_polls(stack.ctx)  # the fan-out at each interval leaves a planned node alone
        send_due_polls(stack.ctx)
        assert polls_sent(stack) == [], second
    clock.at(3 * BASE)
    send_due_polls(stack.ctx)
    assert polls_sent(stack) == [stack.a_id]


def ticks_planned(stack: Stack) -> list[float]:
    """Countdowns of the ticks sent for planned polls, since the last call."""
    ticks = [delay for task, delay in stack.tasks.delayed if task == TaskName.POLL_DUE]
    stack.tasks.delayed.clear()
    return ticks


def test_a_planned_poll_sends_a_tick_for_its_time(stack: Stack, clock: Clock) -> None:
    # Beat's ticks come every half floor; a tick sent for the planned time claims the node
    # then, so a slot freed by a short transfer does not idle until the next beat tick.
    open_transfer(
        stack, "running", bytes_transferred=912_500, bytes_expected=1_000_000, rate_kbps=1000.0
    )
    poll_node(stack.ctx, stack.a_id, owner="test-poller")
    assert ticks_planned(stack) == [pytest.approx(0.7 + pacing.TICK_MARGIN_SECONDS)]

    clock.at(0.7 + pacing.TICK_MARGIN_SECONDS)  # when that tick runs, the node is due
    send_due_polls(stack.ctx)
    assert polls_sent(stack) == [stack.a_id]

    poll_node(stack.ctx, stack.a_id, owner="test-poller")
    ticks_planned(stack)
    clock.at(1.0)
    submitted(stack, 125_000, options={"target_rate_kbps": 1000})  # ends 1 s after its POST
    assert ticks_planned(stack) == [pytest.approx(1.0 + pacing.TICK_MARGIN_SECONDS)]


def test_a_node_never_polled_has_its_first_poll_planned_by_its_first_post(
    stack: Stack, clock: Clock
) -> None:
    # Without a plan the node's first poll waited for the fan-out of the next base interval.
    clock.at(0.2)
    submitted(stack, 125_000, options={"target_rate_kbps": 1000})  # 1 s after its POST

    assert next_poll_in(stack) == pytest.approx(1.2)
    assert ticks_planned(stack) == [pytest.approx(1.0 + pacing.TICK_MARGIN_SECONDS)]
    clock.at(1.2)
    send_due_polls(stack.ctx)
    assert polls_sent(stack) == [stack.a_id]
    poll_node(stack.ctx, stack.a_id, owner="test-poller")  # the plan's row is the feed's cursor
    with stack.ctx.sessions() as session:
        cursor = session.get(NodeCursorRow, stack.a_id)
        assert cursor is not None and cursor.last_success_at is not None
        assert cursor.iteration_token


def test_no_tick_is_sent_for_a_poll_planned_beyond_two_floors(stack: Stack, clock: Clock) -> None:
    # Beat's ticks are soon enough for those: a message per poll of every node is not.
    open_transfer(stack, "running", bytes_transferred=0, bytes_expected=750_000, rate_kbps=100.0)
    poll_node(stack.ctx, stack.a_id, owner="test-poller")
    assert next_poll_in(stack) == pytest.approx(3 * BASE)  # the ceiling
    assert ticks_planned(stack) == []


def test_a_transfer_whose_end_is_unknown_is_polled_each_base_interval(
    stack: Stack, clock: Clock
) -> None:
    open_transfer(stack, "running", bytes_transferred=5_000, bytes_expected=None, rate_kbps=800.0)
    open_transfer(stack, "running", bytes_transferred=5_000, bytes_expected=10**6, rate_kbps=None)
    stack.tasks.take()
    send_polls(stack.ctx)  # never planned: the fan-out sends it at once
    assert polls_sent(stack) == [stack.a_id]

    poll_node(stack.ctx, stack.a_id, owner="test-poller")
    assert next_poll_in(stack) == pytest.approx(BASE)
    assert BASE > pacing.TICK_WITHIN_FLOORS * 0.5  # beyond two floors: beat's tick reads it
    assert ticks_planned(stack) == []
    clock.at(BASE - 0.1)
    send_due_polls(stack.ctx)
    assert polls_sent(stack) == []
    clock.at(BASE)
    send_due_polls(stack.ctx)
    assert polls_sent(stack) == [stack.a_id]


def submitted(stack: Stack, size: int, **spec: Any) -> str:
    """A job of one file of ``size`` bytes, dispatched and posted to the real node."""
    name = f"planned-{uuid.uuid4().hex[:8]}.bin"  # a file: the source check gives its size
    write_tree(stack.root_a, {name: b"x" * size})
    job_id = stack.new_job(name, **spec)
    dispatch(stack.ctx)
    (batch,) = [args for task, args in stack.tasks.take() if task == TaskName.SUBMIT]
    report = submit(stack.ctx, *batch)
    assert [o.outcome for o in report.outcomes] == [Outcome.SUBMITTED]
    return job_id


def test_posted_transfers_plan_their_node_from_their_size_and_the_rate_asked(
    stack: Stack, clock: Clock
) -> None:
    poll_node(stack.ctx, stack.a_id, owner="test-poller")  # last poll at T0, nothing open
    clock.at(0.2)
    # 125,000 bytes at 1,000 kbps: 1 s after the POST, not one base interval after the poll.
    submitted(stack, 125_000, options={"target_rate_kbps": 1000})
    assert next_poll_in(stack) == pytest.approx(1.2)

    # One that should end at once is read at the floor after the last poll, not sooner.
    submitted(stack, 1_000, options={"target_rate_kbps": 1_000_000})
    assert next_poll_in(stack) == pytest.approx(0.5)


def test_a_plan_made_before_the_feed_saw_a_posted_transfer_keeps_its_asked_end(
    stack: Stack, clock: Clock
) -> None:
    # A poll that ends while a group is recorded plans the node again: the transfers it did
    # not see yet are expected at their asked rate, not one base interval later.
    poll_node(stack.ctx, stack.a_id, owner="test-poller")
    clock.at(0.2)
    submitted(stack, 125_000, options={"target_rate_kbps": 1000})
    clock.at(0.3)

    planned = pacing.plan_next_poll(stack.ctx, stack.a_id, failed=False)

    assert planned is not None
    assert (planned - T0).total_seconds() == pytest.approx(1.2)
    clock.at(1.5)  # it should have ended: read at the floor, not one interval later
    planned = pacing.plan_next_poll(stack.ctx, stack.a_id, failed=False)
    assert planned is not None
    assert (planned - T0).total_seconds() == pytest.approx(2.0)


def test_posted_transfers_without_a_rate_leave_the_plan_to_the_feed(
    stack: Stack, clock: Clock
) -> None:
    poll_node(stack.ctx, stack.a_id, owner="test-poller")
    clock.at(0.2)
    submitted(stack, 1_000)
    with stack.ctx.sessions() as session:
        planned = session.scalar(
            select(NodeCursorRow.next_poll_at).where(NodeCursorRow.node_id == stack.a_id)
        )
    assert planned is None, "no rate asked: the fan-out brings the node forward, as before"


def test_a_poll_asked_for_while_one_runs_is_not_pushed_back_by_its_plan(
    stack: Stack, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A person pauses or resumes a transfer while the node's poll runs: poll_soon asks for the
    # node now, and the tick leaves a node whose lease is held alone. The running poll's plan
    # (the ceiling: nothing ends soon) must not replace that request.
    open_transfer(stack, "running", bytes_transferred=0, bytes_expected=750_000, rate_kbps=100.0)
    plan = pacing.plan_next_poll

    def asked_meanwhile(*args: Any, **kwargs: Any) -> Any:
        clock.at(0.1)
        pacing.poll_soon(stack.ctx, stack.a_id)
        send_due_polls(stack.ctx)
        assert polls_sent(stack) == [], "a node whose lease is held is not claimed"
        return plan(*args, **kwargs)

    monkeypatch.setattr(pacing, "plan_next_poll", asked_meanwhile)
    poll_node(stack.ctx, stack.a_id, owner="test-poller")
    assert next_poll_in(stack) == pytest.approx(0.1)  # due now, not at 3 * BASE
    # A tick is sent by poll_soon (the lease was held: it claimed nothing), and one more by
    # the release for the time it wrote (now), not for the running poll's plan.
    assert ticks_planned(stack) == [pytest.approx(pacing.TICK_MARGIN_SECONDS)] * 2


def test_new_transfers_are_read_one_interval_after_the_first_was_created(
    stack: Stack, clock: Clock
) -> None:
    # Not one interval after the node's last poll, which can be moments after their POST.
    open_transfer(stack, "running", bytes_transferred=0, bytes_expected=750_000, rate_kbps=100.0)
    poll_node(stack.ctx, stack.a_id, owner="test-poller")
    assert next_poll_in(stack) == pytest.approx(3 * BASE)  # nothing ends soon
    clock.at(1.5)
    submitted(stack, 1_000)  # no rate asked: not in the plan
    ticks_planned(stack)
    clock.at(2.8)
    send_polls(stack.ctx)  # the fan-out at an interval (beat keeps its own phase)
    assert next_poll_in(stack) == pytest.approx(1.5 + BASE)
    # Within two floors: a tick is sent for it, as for any plan that close.
    assert ticks_planned(stack) == [pytest.approx(0.7 + pacing.TICK_MARGIN_SECONDS)]


def test_a_transfer_posted_while_a_poll_ran_is_read_one_interval_after_its_post(
    stack: Stack, clock: Clock
) -> None:
    # Its attempt row was made before the poll began, its POST answered after: the poll's
    # feed could not list it.
    open_transfer(stack, "running", bytes_transferred=0, bytes_expected=750_000, rate_kbps=100.0)
    clock.at(1.2)
    poll_node(stack.ctx, stack.a_id, owner="test-poller")
    clock.at(1.5)
    job_id = submitted(stack, 1_000)
    with stack.ctx.sessions() as session:
        attempt = session.scalars(select(AttemptRow).where(AttemptRow.job_id == job_id)).one()
        attempt.created_at = T0 + timedelta(seconds=1.0)
        session.commit()
    clock.at(2.8)
    send_polls(stack.ctx)
    assert next_poll_in(stack) == pytest.approx(1.5 + BASE)


def test_new_transfers_wait_for_a_poll_planned_within_a_floor_after_their_interval(
    stack: Stack, clock: Clock
) -> None:
    # 475,000 bytes left at 1,000 kbps: that transfer's end is read at 3.8 s, which is soon
    # enough for one created at 1.5 s (due at 3.5 s): no poll of their own.
    open_transfer(
        stack, "running", bytes_transferred=525_000, bytes_expected=1_000_000, rate_kbps=1000.0
    )
    poll_node(stack.ctx, stack.a_id, owner="test-poller")
    assert next_poll_in(stack) == pytest.approx(3.8)
    clock.at(1.5)
    submitted(stack, 1_000)
    clock.at(BASE)
    send_polls(stack.ctx)
    assert next_poll_in(stack) == pytest.approx(3.8)
