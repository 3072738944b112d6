"""Scheduled replication over a real database and real hstssim nodes, with a fake clock."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from orchestrator.db.tables import JobRow, ScheduleRow
from orchestrator.domain.schedules import ScheduleSpec
from orchestrator.domain.states import JobState
from orchestrator.services.conveyor.control import cancel_job
from orchestrator.services.conveyor.jobs import create_job
from orchestrator.services.events import events_of
from orchestrator.services.schedules.config_file import ReplicationsFileError, apply_file
from orchestrator.services.schedules.runs import RunStillActive, run_now, slot_key, tick
from orchestrator.services.schedules.store import create_schedule, get_schedule, spec_of
from orchestrator.services.views.jobs import show_job
from orchestrator.services.views.schedules import list_schedule_views, schedule_view
from orchestrator.services.views.throughput import totals_by_pair
from tests.services.conftest import Stack
from tests.support.sim import read_tree, write_tree
from tests.support.stack import settle

DAY = datetime(2026, 11, 23, tzinfo=UTC)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def add_schedule(stack: Stack, **fields: object) -> ScheduleSpec:
    """Save a schedule from node-a to node-b at the stack's current time."""
    spec = ScheduleSpec.model_validate(
        {
            "id": f"sched-{uuid.uuid4().hex[:8]}",
            "source_node": "node-a",
            "source_paths": ["outgoing"],
            "destination_node": "node-b",
            "destination_path": "incoming",
            "cron": "0 * * * *",
            **fields,
        }
    )
    create_schedule(stack.ctx, spec)
    return spec


def runs_of(stack: Stack, schedule_id: str) -> list[JobRow]:
    """A schedule's jobs, oldest slot first."""
    with stack.ctx.sessions() as session:
        return list(
            session.scalars(
                select(JobRow).where(JobRow.schedule_id == schedule_id).order_by(JobRow.slot_time)
            )
        )


def finish_runs(stack: Stack, schedule_id: str) -> None:
    """End every open run (as if each finished before the next slot)."""
    for job in runs_of(stack, schedule_id):
        if job.state == JobState.QUEUED:
            cancel_job(stack.ctx, job.id)


@pytest.fixture
def clock(stack: Stack) -> FakeClock:
    fake = FakeClock(DAY - timedelta(minutes=1))
    stack.ctx.clock = fake
    return fake


def test_an_hourly_schedule_over_a_simulated_day_makes_exactly_24_jobs(
    stack: Stack, clock: FakeClock
) -> None:
    spec = add_schedule(stack)
    for _ in range(24 * 12):  # beat ticks every 5 simulated minutes
        clock.advance(minutes=5)
        tick(stack.ctx)
        tick(stack.ctx)  # a redelivered tick changes nothing
        finish_runs(stack, spec.id)
    runs = runs_of(stack, spec.id)
    assert [run.slot_time for run in runs] == [DAY + timedelta(hours=h) for h in range(24)]
    assert {run.labels["trigger"] for run in runs} == {"schedule"}


def test_a_three_hour_downtime_makes_one_catch_up_run(stack: Stack, clock: FakeClock) -> None:
    spec = add_schedule(stack)
    clock.advance(hours=1, minutes=6)  # 01:05
    assert len(tick(stack.ctx).started) == 1
    finish_runs(stack, spec.id)
    clock.advance(hours=3, minutes=5)  # down until 04:10: 02:00, 03:00 and 04:00 were missed
    summary = tick(stack.ctx)
    assert len(summary.started) == 1, summary
    clock.advance(minutes=5)
    assert not tick(stack.ctx).started
    slots = [run.slot_time for run in runs_of(stack, spec.id)]
    assert slots == [DAY + timedelta(hours=1), DAY + timedelta(hours=4)]


def test_a_slot_is_skipped_while_the_previous_run_is_still_going(
    stack: Stack, clock: FakeClock
) -> None:
    spec = add_schedule(stack)
    clock.advance(minutes=6)
    tick(stack.ctx)
    clock.advance(hours=1)  # 01:05; the 00:00 run is still queued
    summary = tick(stack.ctx)
    assert not summary.started and len(summary.skipped) == 1
    assert "still queued" in str(summary)
    with stack.ctx.sessions() as session:
        assert schedule_view(session, get_schedule(session, spec.id), clock.now).health == "stalled"
    finish_runs(stack, spec.id)
    clock.advance(minutes=10)
    assert not tick(stack.ctx).started  # the skipped 01:00 slot does not come back
    clock.advance(hours=1)
    assert len(tick(stack.ctx).started) == 1
    with stack.ctx.sessions() as session:
        row = get_schedule(session, spec.id)
        assert row.skipped_slots == 1
        assert row.last_skipped_slot == DAY + timedelta(hours=1)
        assert schedule_view(session, row, clock.now).health == "ok"  # the long run ended
    assert [r.slot_time for r in runs_of(stack, spec.id)] == [DAY, DAY + timedelta(hours=2)]


def test_queue_overlap_runs_the_slot_once_the_previous_run_ends(
    stack: Stack, clock: FakeClock
) -> None:
    spec = add_schedule(stack, overlap="queue")
    clock.advance(minutes=6)
    tick(stack.ctx)
    clock.advance(hours=1)
    summary = tick(stack.ctx)
    assert not summary.started and len(summary.waiting) == 1
    finish_runs(stack, spec.id)
    clock.advance(minutes=10)
    assert len(tick(stack.ctx).started) == 1
    assert [r.slot_time for r in runs_of(stack, spec.id)] == [DAY, DAY + timedelta(hours=1)]


def test_a_tick_after_a_crash_finds_the_slot_job_already_made(
    stack: Stack, clock: FakeClock
) -> None:
    spec = add_schedule(stack)
    clock.advance(minutes=6)
    # The job of slot 00:00 exists, but the tick died before marking the slot done.
    create_job(
        stack.ctx,
        spec.job_spec("schedule"),
        idempotency_key=slot_key(spec.id, DAY),
        schedule_id=spec.id,
        slot_time=DAY,
    )
    summary = tick(stack.ctx)
    assert not summary.started and not summary.skipped
    assert len(runs_of(stack, spec.id)) == 1
    with stack.ctx.sessions() as session:
        assert get_schedule(session, spec.id).done_until == DAY


def test_disabled_and_new_timings_do_not_run_the_past(stack: Stack, clock: FakeClock) -> None:
    from orchestrator.services.schedules.store import change_schedule, set_enabled

    spec = add_schedule(stack, enabled=False)
    clock.advance(hours=5, minutes=10)  # 05:09: 00:00..05:00 passed while it was off
    assert not tick(stack.ctx).started
    set_enabled(stack.ctx, spec.id, True)
    clock.advance(minutes=20)  # 05:29
    assert not tick(stack.ctx).started
    change_schedule(stack.ctx, spec.id, {"cron": "*/10 * * * *", "enabled": True})
    clock.advance(minutes=2)  # 05:31: 05:30 is the first slot of the new timing
    assert len(tick(stack.ctx).started) == 1


def test_one_broken_schedule_does_not_hold_the_others_back(stack: Stack, clock: FakeClock) -> None:
    broken = add_schedule(stack)
    healthy = add_schedule(stack)
    with stack.ctx.sessions() as session:  # as if a later version stored an option we refuse
        get_schedule(session, broken.id).options = {"overwrite": "sometimes"}
        session.commit()
    clock.advance(minutes=6)
    summary = tick(stack.ctx)
    assert [s.split("@")[0] for s in summary.started] == [healthy.id]
    assert summary.errors and broken.id in summary.errors[0]
    with stack.ctx.sessions() as session:
        assert "overwrite" in (get_schedule(session, broken.id).last_error or "")
    assert len(runs_of(stack, healthy.id)) == 1 and not runs_of(stack, broken.id)


def test_a_manual_run_during_a_downtime_holds_the_catch_up_slot(
    stack: Stack, clock: FakeClock
) -> None:
    spec = add_schedule(stack)
    clock.advance(hours=3, minutes=31)  # 03:30: beat is down, an operator runs it by hand
    manual = run_now(stack.ctx, spec.id)
    clock.advance(minutes=10)  # 03:40: beat is back; the 03:00 slot is due
    summary = tick(stack.ctx)
    assert not summary.started and len(summary.skipped) == 1
    assert [r.id for r in runs_of(stack, spec.id)] == [manual.job.id]


def test_run_now_and_a_tick_racing_make_one_run(stack: Stack, clock: FakeClock) -> None:
    spec = add_schedule(stack)
    clock.advance(minutes=6)
    tick(stack.ctx)  # the 00:00 run
    with pytest.raises(RunStillActive):
        run_now(stack.ctx, spec.id)
    finish_runs(stack, spec.id)
    clock.advance(hours=1)
    manual = run_now(stack.ctx, spec.id)  # 01:05, before the tick that would run 01:00
    assert tick(stack.ctx).skipped
    assert [r.id for r in runs_of(stack, spec.id)][-1] == manual.job.id


def test_run_now_is_refused_while_a_run_is_active(stack: Stack, clock: FakeClock) -> None:
    spec = add_schedule(stack)
    created = run_now(stack.ctx, spec.id)
    assert created.job.labels["trigger"] == "manual"
    with pytest.raises(RunStillActive, match="still queued"):
        run_now(stack.ctx, spec.id)
    clock.advance(minutes=10)  # the 00:00 slot comes while the manual run is going
    assert tick(stack.ctx).skipped


def test_a_real_run_moves_only_what_changed(stack: Stack) -> None:
    """First run copies the tree; the next moves one changed and one new file; the third none."""
    offset = timedelta()
    stack.ctx.clock = lambda: datetime.now(UTC) + offset
    folder = f"rep-{uuid.uuid4().hex[:8]}"
    tree = {
        "a.bin": os.urandom(40_000),
        "b.bin": os.urandom(30_000),
        "sub/c.bin": os.urandom(20_000),
        "sub/d.bin": os.urandom(10_000),
    }
    write_tree(stack.root_a / folder, tree)
    spec = add_schedule(
        stack, source_paths=[folder], destination_path=f"mirror-{folder}", interval_seconds=3600,
        cron=None,
    )  # fmt: skip

    def run_once() -> JobRow:
        nonlocal offset
        offset += timedelta(hours=1)
        summary = tick(stack.ctx)
        assert len(summary.started) == 1, summary
        settle(stack.ctx, stack.tasks, [stack.a_id])
        return runs_of(stack, spec.id)[-1]

    first = run_once()
    assert first.state == JobState.COMPLETED
    mirror = stack.root_b / f"mirror-{folder}" / folder
    assert read_tree(mirror) == tree

    changed = {"b.bin": os.urandom(31_000), "sub/e.bin": os.urandom(7_000)}
    write_tree(stack.root_a / folder, changed)
    stack.admin_a.reset_counters()
    stack.admin_b.reset_counters()
    second = run_once()
    assert second.state == JobState.COMPLETED
    assert read_tree(mirror) == {**tree, **changed}
    moved = sum(len(data) for data in changed.values())
    assert stack.admin_a.counters()["bytes_sent"] == moved
    assert stack.admin_b.counters()["bytes_received"] == moved
    assert stack.admin_b.counters()["files_written"] == 2
    assert (second.bytes_transferred, second.files_completed) == (moved, 2)

    third = run_once()
    assert third.state == JobState.COMPLETED
    assert (third.bytes_transferred, third.files_completed) == (0, 0)
    shown = show_job(stack.ctx, third.id)  # what the API, the dashboard and the CLI show
    assert (shown.progress, shown.fraction) == ("up to date (5 files already there)", 1.0)
    with stack.ctx.sessions() as session:
        said = [e.message for e in events_of(session, third.id) if e.to_state == "completed"]
        assert "up to date (5 files already there)" in said[0], said
        view = schedule_view(session, get_schedule(session, spec.id), stack.ctx.now())
        assert [r.files_completed for r in view.runs] == [0, 2, 4]
        assert view.runs[0].files_skipped == 5
        assert view.success_streak == 3 and view.health == "ok"
        assert view.last_run is not None and view.last_run.job_id == third.id
        pair = totals_by_pair(session)[(stack.a_id, stack.b_id)]
        assert pair == (sum(len(d) for d in tree.values()) + moved, len(tree) + 2)


def test_views_show_health_at_a_glance(stack: Stack, clock: FakeClock) -> None:
    spec = add_schedule(stack, source_paths=["does-not-exist"])
    with stack.ctx.sessions() as session:
        views = {v.id: v for v in list_schedule_views(session, clock.now)}
    assert views[spec.id].health == "never run"
    assert views[spec.id].next_run_at == DAY
    clock.advance(minutes=6)
    tick(stack.ctx)
    with stack.ctx.sessions() as session:
        job = session.scalars(select(JobRow).where(JobRow.schedule_id == spec.id)).one()
        job.state = JobState.FAILED  # as the poller records a node failure
        job.error_text = "file not found"
        session.commit()
        view = schedule_view(session, get_schedule(session, spec.id), clock.now)
    assert view.health == "failing" and view.failure_streak == 1 and view.success_streak == 0
    assert view.runs[0].error_text == "file not found"
    assert view.next_run_at == DAY + timedelta(hours=1)


def write_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "replications.yaml"
    path.write_text(text)
    return path


def entry(schedule_id: str, cron: str = "0 * * * *", node: str = "node-b") -> str:
    return f"""
  - id: {schedule_id}
    cron: "{cron}"
    source_node: node-a
    source_paths: [outgoing]
    destination_node: {node}
    destination_path: incoming
"""


def test_the_replications_file_is_reconciled(stack: Stack, tmp_path: Path) -> None:
    api_made = add_schedule(stack)
    ids = [f"file-{uuid.uuid4().hex[:6]}-{n}" for n in range(3)]
    path = write_file(tmp_path, "schedules:" + entry(ids[0]) + entry(ids[1]))
    first = apply_file(stack.ctx, path)
    assert sorted(first.added) == sorted(ids[:2]) and not first.errors
    again = apply_file(stack.ctx, path)
    assert sorted(again.unchanged) == sorted(ids[:2]) and not again.added
    write_file(tmp_path, "schedules:" + entry(ids[1], cron="30 * * * *") + entry(ids[2]))
    third = apply_file(stack.ctx, path)
    assert (third.added, third.changed, third.removed) == ([ids[2]], [ids[1]], [ids[0]])
    with stack.ctx.sessions() as session:
        rows = {r.id: r for r in session.scalars(select(ScheduleRow))}
        assert api_made.id in rows and rows[api_made.id].managed_by == "api"
        assert ids[0] not in rows
        assert spec_of(session, rows[ids[1]]).cron == "30 * * * *"


def test_a_bad_file_entry_is_reported_and_the_rest_applied(stack: Stack, tmp_path: Path) -> None:
    good, bad = f"good-{uuid.uuid4().hex[:6]}", f"bad-{uuid.uuid4().hex[:6]}"
    path = write_file(tmp_path, "schedules:" + entry(good) + entry(bad, node="nowhere"))
    result = apply_file(stack.ctx, path)
    assert result.added == [good]
    assert "nowhere" in result.errors[0] and "destination_node" in result.errors[0]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("schedules: [", "not YAML"),
        ("schedules:" + entry("x", cron="99 * * * *"), "schedules.0.cron"),
        ("schedules:" + entry("x") + entry("x"), "given twice"),
        ("nodes: []", "nodes: Extra inputs are not permitted"),
    ],
)
def test_an_unreadable_file_says_where(tmp_path: Path, stack: Stack, text: str, words: str) -> None:
    check: Callable[[], object] = lambda: apply_file(stack.ctx, write_file(tmp_path, text))  # noqa: E731
    with pytest.raises(ReplicationsFileError, match=words.replace(".", r"\.")):
        check()
