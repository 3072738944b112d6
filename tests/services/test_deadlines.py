"""Deadlines at submit (a warning, or a refusal) and while running (ETA, at risk, missed), with
real hstssim nodes on SQLite and PostgreSQL."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from orchestrator.db.tables import JobRow, LinkRateRow
from orchestrator.domain.deadlines import clock
from orchestrator.domain.jobs import JobSpec
from orchestrator.domain.schedules import ScheduleSpec
from orchestrator.domain.states import JobState
from orchestrator.services.conveyor.intake import submit_message
from orchestrator.services.conveyor.jobs import JobRejected, create_job, get_job
from orchestrator.services.conveyor.polling import poll_node
from orchestrator.services.events import events_of
from orchestrator.services.schedules.runs import run_now
from orchestrator.services.schedules.store import create_schedule, get_schedule, spec_of
from orchestrator.services.views.jobs import show_job
from tests.services.conftest import Stack
from tests.support.sim import write_tree
from tests.support.stack import run_tasks, settle


@pytest.fixture
def stack_settings() -> dict[str, Any]:
    return {"progress_seconds": 0.0}  # every poll writes progress, so the ETA follows each


def spec(folder: str, **fields: Any) -> JobSpec:
    return JobSpec.model_validate(
        {
            "source_node": "node-a",
            "source_paths": [folder],
            "destination_node": "node-b",
            "destination_path": f"in-{folder}",
            **fields,
        }
    )


def deadline_events(stack: Stack, job_id: str) -> list[str]:
    with stack.ctx.sessions() as session:
        return [e.message for e in events_of(session, job_id) if e.kind == "deadline"]


def test_a_deadline_the_measured_link_cannot_meet_is_said_or_refused(stack: Stack) -> None:
    write_tree(stack.root_a, {"big.bin": os.urandom(1_000_000)})
    stack.measured_link(10_000.0)  # the link measured at 80 kbps: 10 KB/s
    ahead = stack.new_job("ahead", priority=5)
    behind = stack.new_job("behind", priority=-5)  # a lower priority would not go first
    with stack.ctx.sessions() as session:
        get_job(session, ahead).bytes_expected = 3_000_000
        get_job(session, behind).bytes_expected = 50_000_000
        session.commit()
    now = stack.ctx.now()
    deadline = now + timedelta(minutes=1)

    created = create_job(stack.ctx, spec("big.bin", deadline=deadline))

    (warning,) = created.warnings
    assert warning.startswith(
        "at the link's measured 80.0 kbps and 4.00 MB ahead, this job would finish about "
    )
    assert warning.endswith(f", after its deadline {clock(deadline, now)}")
    view = show_job(stack.ctx, created.job.id)
    assert view.at_risk and view.deadline == deadline and view.bytes_expected == 1_000_000
    assert view.eta is not None
    assert abs((view.eta - (now + timedelta(seconds=400))).total_seconds()) < 10
    assert deadline_events(stack, created.job.id) == [warning]

    with pytest.raises(JobRejected) as refused:
        create_job(stack.ctx, spec("big.bin", deadline=deadline, deadline_policy="reject"))
    assert refused.value.field == "deadline"
    assert "after its deadline" in str(refused.value) and "'reject'" in str(refused.value)

    later = create_job(stack.ctx, spec("big.bin", deadline=now + timedelta(hours=1)))
    assert later.warnings == ()
    assert not show_job(stack.ctx, later.job.id).at_risk
    with stack.ctx.sessions() as session:
        assert session.scalar(select(func.count()).select_from(JobRow)) == 4, "none refused made"
    assert stack.admin_a.counters()["requests"]["POST /files/info"] == 3, "one per deadline job"


def test_an_unmeasured_link_is_said_and_accepted_and_a_past_deadline_refused(
    stack: Stack,
) -> None:
    now = stack.ctx.now()
    created = create_job(
        stack.ctx, spec("any", deadline=now + timedelta(hours=2), deadline_policy="reject")
    )
    assert created.warnings == (
        "no measured throughput for node-a → node-b yet; the deadline is not checked",
    )
    assert show_job(stack.ctx, created.job.id).eta is None

    with pytest.raises(JobRejected) as refused:
        create_job(stack.ctx, spec("any", deadline=now - timedelta(seconds=1)))
    assert refused.value.field == "deadline"
    assert "is not in the future" in str(refused.value)


def test_a_running_job_keeps_its_eta_is_flagged_at_risk_and_its_late_end_is_recorded(
    stack: Stack,
) -> None:
    payload = os.urandom(2_000_000)
    write_tree(stack.root_a, {"late/f.bin": payload})
    deadline = stack.ctx.now() + timedelta(seconds=1)
    job_id = stack.new_job(
        "late",
        deadline=deadline.isoformat(),
        options={"target_rate_kbps": 8000},  # 1 MB/s
    )
    run_tasks(stack.ctx, stack.tasks)

    def running_eta() -> bool:
        poll_node(stack.ctx, stack.a_id, owner="test-poller")
        view = show_job(stack.ctx, job_id)
        return view.state == JobState.RUNNING and view.eta is not None and view.at_risk

    settle(stack.ctx, stack.tasks, [stack.a_id], until=lambda _: running_eta())
    view = show_job(stack.ctx, job_id)
    assert view.eta is not None and view.eta > deadline
    (risk,) = deadline_events(stack, job_id)[1:]  # after the submit's "no measurement yet"
    assert risk.startswith("at risk: at ") and " left, it would finish about " in risk
    assert risk.endswith(f", after its deadline {clock(deadline, stack.ctx.now())}")

    states = settle(stack.ctx, stack.tasks, [stack.a_id])

    assert states[job_id] == JobState.COMPLETED
    assert (stack.root_b / "in-late" / "late" / "f.bin").read_bytes() == payload
    assert deadline_events(stack, job_id)[-1].startswith("deadline missed by ")
    done = show_job(stack.ctx, job_id)
    assert done.deadline_missed and not done.at_risk and done.eta is None
    with stack.ctx.sessions() as session:
        link = session.get(LinkRateRow, (stack.a_id, stack.b_id))
        assert link is not None and link.transfers == 1
        assert 100_000 < link.bytes_per_second < 2_000_000, "about the 1 MB/s it was given"


def test_each_run_of_a_schedule_gets_its_relative_deadline(stack: Stack) -> None:
    spec = ScheduleSpec.model_validate(
        {
            "id": "hourly",
            "cron": "0 * * * *",
            "source_node": "node-a",
            "source_paths": ["media"],
            "destination_node": "node-b",
            "destination_path": "replica",
            "deadline_after": "2h",
        }
    )
    create_schedule(stack.ctx, spec)
    with stack.ctx.sessions() as session:
        assert spec_of(session, get_schedule(session, "hourly")).deadline_after == 7200

    before = stack.ctx.now()
    created = run_now(stack.ctx, "hourly")

    deadline = show_job(stack.ctx, created.job.id).deadline
    assert deadline is not None
    assert before + timedelta(hours=2) <= deadline <= stack.ctx.now() + timedelta(hours=2)
    assert created.warnings == (
        "no measured throughput for node-a → node-b yet; the deadline is not checked",
    )
    with pytest.raises(ValidationError, match="is not a duration"):
        ScheduleSpec.model_validate({**spec.model_dump(), "deadline_after": "soon"})


def test_a_queue_message_carries_a_deadline_and_hears_its_warning(stack: Stack) -> None:
    body = spec("queued", deadline=stack.ctx.now() + timedelta(hours=1)).model_dump(mode="json")

    said = submit_message(stack.ctx, body)

    assert said.startswith("job ") and said.endswith(
        " queued; warning: no measured throughput for node-a → node-b yet; the deadline is "
        "not checked"
    )
    past = {**body, "deadline": "2020-01-01T00:00:00Z"}
    assert submit_message(stack.ctx, past).startswith("rejected: deadline: 2020-01-01 00:00:00")
