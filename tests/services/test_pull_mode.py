"""Pull mode: download_setup on the source, the transfer posted to and run by the destination."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from sqlalchemy import update

from orchestrator.db.tables import JobRow, NodeRow
from orchestrator.domain.states import JobState
from orchestrator.domain.transfers import TransferSpec
from orchestrator.services.conveyor.jobs import get_job
from orchestrator.services.conveyor.submission import Outcome, submit
from orchestrator.services.events import events_of
from orchestrator.services.views.jobs import attempts_of
from tests.services.conftest import Stack
from tests.support.sim import read_tree, write_tree
from tests.support.stack import assert_story_of_a_clean_run, run_tasks, settle


class WorkerDied(BaseException):
    """The worker process ends here (kill -9): nothing after this line runs."""


def transfers_of(stack: Stack, job_id: str, on: str) -> list[dict[str, object]]:
    admin = stack.admin_a if on == "a" else stack.admin_b
    return [
        t
        for t in admin.transfers()
        if (t["start_spec"].get("tags") or {}).get("orchestrator", {}).get("job") == job_id
    ]


def test_a_pull_job_is_run_by_the_destination_and_arrives_byte_identical(stack: Stack) -> None:
    files = {
        "p1/a.bin": os.urandom(300_000),
        "p1/nested/b.txt": b"pulled\n",
        "p1/empty": b"",
    }
    write_tree(stack.root_a, files)
    job_id = stack.new_job("p1", mode="pull", options={"overwrite": "always"})

    states = settle(stack.ctx, stack.tasks, [stack.b_id])

    assert states[job_id] == JobState.COMPLETED
    assert read_tree(stack.root_b / "in-p1") == files
    a, b = stack.admin_a.counters(), stack.admin_b.counters()
    assert (a["transfers_created"], b["transfers_created"]) == (0, 1)
    assert a["requests"]["POST /files/download_setup"] == 1
    assert "POST /files/upload_setup" not in b["requests"]
    (transfer,) = transfers_of(stack, job_id, on="b")
    assert transfer["start_spec"]["direction"] == "receive"
    with stack.ctx.sessions() as session:
        job = get_job(session, job_id)
        assert job.mode == "pull"
        assert job.bytes_transferred == sum(len(v) for v in files.values())
        (attempt,) = attempts_of(session, job_id)
        assert attempt.source_node_id == stack.b_id  # the node that runs the transfer
        assert attempt.remote_id == transfer["id"]
        assert_story_of_a_clean_run(session, job_id)
        messages = [e.message for e in events_of(session, job_id)]
    assert "pulled by node-b" in messages[0]
    assert any("started on node-b (attempt 1)" in m for m in messages)


def test_a_submit_that_dies_after_the_post_adopts_the_destinations_transfer(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_tree(stack.root_a, {"p2/f.bin": os.urandom(50_000)})
    job_id = stack.new_job("p2", mode="pull")
    runner = stack.ctx.clients.get(stack.b_id)
    real_post = runner.start_transfer

    def post_then_die(spec: TransferSpec) -> str:
        real_post(spec)
        raise WorkerDied

    monkeypatch.setattr(runner, "start_transfer", post_then_die)
    with pytest.raises(WorkerDied):
        run_tasks(stack.ctx, stack.tasks)
    monkeypatch.undo()
    stack.tasks.take()
    with stack.ctx.sessions() as session:  # the dead worker's lease runs out
        session.execute(
            update(JobRow)
            .where(JobRow.id == job_id)
            .values(next_attempt_at=stack.ctx.now() - timedelta(seconds=1))
        )
        session.commit()

    resumed = submit(stack.ctx, job_id)  # the sweeper's resend, before any poll
    states = settle(stack.ctx, stack.tasks, [stack.b_id])

    assert resumed.of(Outcome.SUBMITTED), str(resumed)
    assert states[job_id] == JobState.COMPLETED
    assert stack.admin_b.counters()["requests"]["POST /ops/transfers"] == 1
    assert stack.admin_a.counters()["transfers_created"] == 0
    (transfer,) = transfers_of(stack, job_id, on="b")
    with stack.ctx.sessions() as session:
        (attempt,) = attempts_of(session, job_id)
        assert attempt.remote_id == transfer["id"]
        messages = " ".join(e.message for e in events_of(session, job_id))
    assert "adopted it (no second POST)" in messages
    assert (stack.root_b / "in-p2/p2/f.bin").read_bytes() == (
        stack.root_a / "p2/f.bin"
    ).read_bytes()


def test_a_pull_counts_on_the_destination_that_runs_it(stack: Stack) -> None:
    with stack.ctx.sessions() as session:
        destination = session.get(NodeRow, stack.b_id)
        assert destination is not None
        destination.max_inbound = 1
        session.commit()
    write_tree(stack.root_a, {"p3/f": os.urandom(2_000), "p4/f": b"4", "p5/f": b"5"})
    first = stack.new_job("p3", mode="pull", priority=5, options={"target_rate_kbps": 100})
    pushed = stack.new_job("p4", priority=1)
    pulled = stack.new_job("p5", mode="pull")

    run_tasks(stack.ctx, stack.tasks)

    with stack.ctx.sessions() as session:
        assert get_job(session, first).state != JobState.QUEUED
        for waiting in (pushed, pulled):
            job = get_job(session, waiting)
            assert job.state == JobState.QUEUED
            assert "destination node node-b is at its limit (1 active)" in (
                job.waiting_reason or ""
            )
    states = settle(stack.ctx, stack.tasks, [stack.a_id, stack.b_id])
    assert set(states.values()) == {JobState.COMPLETED}
    assert stack.admin_b.counters()["transfers_created"] == 2  # the two pulls
    assert stack.admin_a.counters()["transfers_created"] == 1  # the push
