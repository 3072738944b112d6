"""Maintenance windows: admission before a window, pause at its start, resume after it."""

from __future__ import annotations

import dataclasses
import os
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from orchestrator.db.tables import JobRow, ThroughputMinuteRow
from orchestrator.domain.maintenance import MaintenanceSpec
from orchestrator.domain.states import JobState
from orchestrator.services.context import ServiceContext
from orchestrator.services.conveyor.dispatch import dispatch
from orchestrator.services.conveyor.maintenance import maintenance_tick
from orchestrator.services.conveyor.polling import poll_node
from orchestrator.services.events import events_of
from orchestrator.services.nodes.maintenance import add_window, remove_window, windows_of
from orchestrator.services.views.jobs import attempts_of
from orchestrator.taskqueue import TaskName
from tests.services.conftest import Stack
from tests.support.sim import read_tree, wait_for, write_tree
from tests.support.stack import job_states, run_tasks, settle


def one_off(start: datetime, hours: float = 1, reason: str = "kernel upgrade") -> MaintenanceSpec:
    return MaintenanceSpec(start=start, end=start + timedelta(hours=hours), reason=reason)


def waiting_reason(ctx: ServiceContext, job_id: str) -> str | None:
    with ctx.sessions() as session:
        return session.scalar(select(JobRow.waiting_reason).where(JobRow.id == job_id))


def at(ctx: ServiceContext, moment: datetime) -> ServiceContext:
    """The same services, with the clock stopped at ``moment``."""
    return dataclasses.replace(ctx, clock=lambda: moment)


def messages(ctx: ServiceContext, job_id: str, kind: str) -> list[str]:
    with ctx.sessions() as session:
        return [e.message for e in events_of(session, job_id) if e.kind == kind]


def test_admission_refuses_work_that_cannot_finish_before_a_window(stack: Stack) -> None:
    ctx = stack.ctx
    now = datetime(2026, 12, 1, 1, 30, tzinfo=UTC)
    add_window(ctx, "node-b", one_off(datetime(2026, 12, 1, 2, 0, tzinfo=UTC)))
    assert stack.tasks.take() == [(TaskName.MAINTENANCE_TICK, ())]
    # The link moved 1 MB/s over its busy minutes of the last quarter hour.
    with ctx.sessions() as session:
        for minutes_ago in (2, 3):
            session.add(
                ThroughputMinuteRow(
                    minute=now.replace(second=0) - timedelta(minutes=minutes_ago),
                    source_node_id=stack.a_id,
                    destination_node_id=stack.b_id,
                    bytes=60_000_000,
                    files=1,
                )
            )
        session.commit()
    unknown = stack.new_job("u")  # no size known yet: the window is within the hour
    big = stack.new_job("big")  # 4 GB at 1 MB/s: more than the 30 minutes left
    small = stack.new_job("small")  # 100 MB at 1 MB/s: done well before
    with ctx.sessions() as session:
        for job_id, size in ((big, 4_000_000_000), (small, 100_000_000)):
            job = session.get(JobRow, job_id)
            assert job is not None
            job.bytes_expected = size
        session.commit()
    summary = dispatch(at(ctx, now))
    assert summary.admitted == [small]
    assert waiting_reason(ctx, unknown) == (
        "node node-b maintenance at 02:00 UTC; this job's duration is unknown "
        "and the window opens within the hour"
    )
    assert waiting_reason(ctx, big) == (
        "node node-b maintenance at 02:00 UTC; this job would not finish before it "
        "(about 1h6m40s needed)"
    )
    # During the window every job on the node waits, and says until when.
    dispatch(at(ctx, now + timedelta(minutes=45)))
    for job_id in (unknown, big):
        assert waiting_reason(ctx, job_id) == (
            "node node-b in maintenance until 03:00 UTC (kernel upgrade)"
        )
    # Two and a half hours ahead of the window, both may start.
    assert set(dispatch(at(ctx, now - timedelta(hours=2))).admitted) == {unknown, big}
    assert stack.admin_a.counters()["transfers_created"] == 0


def test_a_recurring_window_follows_its_time_zone(stack: Stack) -> None:
    ctx = stack.ctx
    spec = MaintenanceSpec(
        cron="0 2 * * SUN", duration_seconds=7200, timezone="Europe/Paris", reason="backups"
    )
    window = add_window(ctx, "node-a", spec)
    assert window.describe() == "every '0 2 * * SUN' (Europe/Paris) for 2h"
    # Sunday 6 December 2026, 02:00 in Paris is 01:00 UTC (winter time): over at 03:00 UTC.
    job_id = stack.new_job("rec")
    dispatch(at(ctx, datetime(2026, 12, 6, 2, 59, tzinfo=UTC)))
    assert waiting_reason(ctx, job_id) == ("node node-a in maintenance until 03:00 UTC (backups)")
    # On Saturday evening the next window is hours away: the job starts.
    assert dispatch(at(ctx, datetime(2026, 12, 5, 20, 0, tzinfo=UTC))).admitted == [job_id]
    # In summer the same wall-clock window is 00:00 to 02:00 UTC.
    occurrence = windows_of(ctx, "node-a")[0].current(datetime(2026, 7, 5, 1, 59, tzinfo=UTC))
    assert occurrence is not None
    assert (occurrence.start, occurrence.end) == (
        datetime(2026, 7, 5, 0, 0, tzinfo=UTC),
        datetime(2026, 7, 5, 2, 0, tzinfo=UTC),
    )
    remove_window(ctx, "node-a", window.id)
    assert windows_of(ctx, "node-a") == []


def slow_job(stack: Stack, folder: str) -> tuple[str, bytes]:
    data = os.urandom(600_000)
    write_tree(stack.root_a, {f"{folder}/big.bin": data})
    job_id = stack.new_job(folder, options={"target_rate_kbps": 2000})
    run_tasks(stack.ctx, stack.tasks)
    settle(stack.ctx, stack.tasks, [stack.a_id], until=lambda s: s[job_id] == JobState.RUNNING)
    return job_id, data


def test_transfers_pause_at_the_start_and_resume_after_the_end(stack: Stack) -> None:
    ctx = stack.ctx
    job_id, data = slow_job(stack, "mw")
    start = ctx.now()
    add_window(ctx, "node-b", one_off(start - timedelta(seconds=1), reason="disk swap"))
    tick = maintenance_tick(ctx)
    assert tick.paused == [job_id]
    assert tick.nodes_in_maintenance == ["node-b"]
    settle(ctx, stack.tasks, [stack.a_id], until=lambda s: s[job_id] == JobState.PAUSED)
    assert maintenance_tick(ctx).paused == []  # once is enough
    # A job queued meanwhile is held.
    write_tree(stack.root_a, {"later/f.txt": b"later"})
    later = stack.new_job("later")
    run_tasks(ctx, stack.tasks)
    assert job_states(ctx)[later] == JobState.QUEUED
    assert (waiting_reason(ctx, later) or "").startswith("node node-b in maintenance until")
    # The window ends (the clock says so): the tick resumes the transfer and releases the queue.
    after = maintenance_tick(at(ctx, start + timedelta(hours=1, seconds=1)))
    assert after.resumed == [job_id]
    ctx.clock = lambda: datetime.now(UTC) + timedelta(hours=1, seconds=1)
    states = settle(ctx, stack.tasks, [stack.a_id])
    assert states == {job_id: JobState.COMPLETED, later: JobState.COMPLETED}
    assert read_tree(stack.root_b / "in-mw") == {"mw/big.bin": data}
    paused, resumed = messages(ctx, job_id, "maintenance")
    assert paused.startswith("paused: node node-b in maintenance until ")
    assert paused.endswith(" UTC (disk swap)")
    assert resumed.startswith("resumed: maintenance over (planned until ")
    with ctx.sessions() as session:
        assert [a.status for a in attempts_of(session, job_id)] == ["completed"]
    assert stack.admin_a.counters()["transfers_created"] == 2  # one each: no failure, no retry


def test_a_transfer_the_node_cannot_resume_gets_a_new_attempt(stack: Stack) -> None:
    ctx = stack.ctx
    job_id, data = slow_job(stack, "lost")
    start = ctx.now()
    add_window(ctx, "node-a", one_off(start - timedelta(seconds=1), reason="reboot"))
    assert maintenance_tick(ctx).paused == [job_id]
    settle(ctx, stack.tasks, [stack.a_id], until=lambda s: s[job_id] == JobState.PAUSED)
    # The node forgot the transfer meanwhile: the resume answers 404.
    stack.admin_a.fault(kind="http_error", endpoint="PUT /ops/transfers/{id}", status=404, count=1)
    after = maintenance_tick(at(ctx, start + timedelta(hours=2)))
    assert after.restarted == [job_id]
    ctx.clock = lambda: datetime.now(UTC) + timedelta(hours=2)
    assert settle(ctx, stack.tasks, [stack.a_id]) == {job_id: JobState.COMPLETED}
    assert read_tree(stack.root_b / "in-lost") == {"lost/big.bin": data}
    with ctx.sessions() as session:
        assert [a.status for a in attempts_of(session, job_id)][-1] == "completed"
        assert session.get(JobRow, job_id).max_attempts == 4  # type: ignore[union-attr]
    restarted = [
        m for m in messages(ctx, job_id, "state") if "a new attempt with a fresh token" in m
    ]
    assert len(restarted) == 1
    assert "the node could not resume the transfer" in restarted[0]
    assert stack.admin_b.counters()["requests"]["POST /files/upload_setup"] == 2


def test_a_transfer_that_ended_is_not_paused_while_its_job_waits_for_its_files(
    stack: Stack,
) -> None:
    """A job whose checksums are read stays running after its transfer completed, until its
    files are stored (a node in maintenance may not answer that read): the tick must not
    pause, nor later resume or restart, a transfer that already ended."""
    data = os.urandom(100_000)
    write_tree(stack.root_a, {"done/d.bin": data})
    job_id = stack.new_job("done", options={"file_checksum": "sha256"})
    run_tasks(stack.ctx, stack.tasks)

    def ended() -> bool:
        poll_node(stack.ctx, stack.a_id, owner="test-poller")
        with stack.ctx.sessions() as session:
            return all(a.ended_at is not None for a in attempts_of(session, job_id))

    wait_for(ended)
    # Its files are still to be read: the job is where the poll found it (submitted or running).
    assert job_states(stack.ctx)[job_id] in (JobState.SUBMITTED, JobState.RUNNING)
    add_window(stack.ctx, "node-b", one_off(stack.ctx.now() - timedelta(minutes=1)))

    assert maintenance_tick(stack.ctx).paused == []
    assert messages(stack.ctx, job_id, "maintenance") == []
    assert settle(stack.ctx, stack.tasks, [stack.a_id]) == {job_id: JobState.COMPLETED}
    assert read_tree(stack.root_b / "in-done") == {"done/d.bin": data}
