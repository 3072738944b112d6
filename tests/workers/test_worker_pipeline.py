"""Jobs through real celery processes (worker, beat), a real redis-server and two hstssim nodes."""

from __future__ import annotations

import dataclasses
import os

import pytest

from orchestrator.domain.jobs import JobSpec
from orchestrator.domain.states import JobState
from orchestrator.services.context import no_enqueue
from orchestrator.services.conveyor.dispatch import dispatch
from orchestrator.services.conveyor.jobs import create_job, get_job
from orchestrator.services.views.jobs import attempts_of
from orchestrator.services.views.nodes import show_node
from orchestrator.taskqueue import TaskName
from tests.support.processes import wait_for
from tests.support.sim import write_tree
from tests.support.stack import assert_story_of_a_clean_run
from tests.workers.conftest import Rig, spec_for


@pytest.mark.rig(settings={"node_check_seconds": 2})
def test_directory_job_completes_through_the_worker_and_the_log_tells_the_story(
    rig: Rig,
) -> None:
    files = {
        "d1/empty": b"",
        "d1/small.txt": b"small\n",
        "d1/medium.bin": os.urandom(300_000),
        "d1/large.bin": os.urandom(2_000_000),
        "d1/nested/deep/leaf": os.urandom(1234),
    }
    write_tree(rig.a.config.docroot, files)
    rig.files["d1"] = files
    rig.worker()

    job_id = rig.new_job("d1", options={"overwrite": "always"})

    rig.assert_converged([job_id])
    with rig.ctx.sessions() as session:
        job = get_job(session, job_id)
        assert job.bytes_transferred == sum(len(v) for v in files.values())
        assert job.files_completed == len(files)
        assert job.finished_at is not None
        (attempt,) = attempts_of(session, job_id)
        assert attempt.status == "completed"
        assert_story_of_a_clean_run(session, job_id, poll_may_lead=True)
    assert rig.admin_a.counters()["requests"]["POST /ops/transfers"] == 1
    assert rig.admin_b.counters()["requests"]["POST /files/upload_setup"] == 1
    # Beat has the worker check every node, the destination that is never polled too.
    checked = wait_for(
        lambda: show_node(rig.ctx, "node-b").version,
        timeout=20,
        what="node-b's first health check",
        watch=rig.live(),
    )
    assert checked == "4.4.6.sim" and show_node(rig.ctx, "node-b").reachable


# The sweep re-sends dispatch for a job queued longer than queued_sweep_seconds; at the rig's
# 0.5 s it could admit these jobs while the test still creates them (seen on slow cores).
@pytest.mark.rig(settings={"queued_sweep_seconds": 120.0})
def test_two_workers_racing_on_the_same_jobs_process_each_once(rig: Rig) -> None:
    first, second = rig.worker("w1", wait=False), rig.worker("w2", wait=False)
    first.wait_ready()
    second.wait_ready()
    # Five jobs committed without a wake-up, then admitted here: one (batched) submit message
    # from dispatch plus three more per job reach both workers (four pool processes) at once.
    quiet = dataclasses.replace(rig.ctx, enqueue=no_enqueue)
    ids = []
    for i in range(5):
        rig.tree(f"two{i}", [40_000, 7, 0])
        ids.append(create_job(quiet, JobSpec.model_validate(spec_for(f"two{i}"))).job.id)
    admitted = dispatch(rig.ctx).admitted
    assert sorted(admitted) == sorted(ids)
    for _ in range(3):
        for job_id in ids:
            rig.ctx.enqueue(TaskName.SUBMIT, job_id)
        rig.ctx.enqueue(TaskName.DISPATCH)
    rig.wait(lambda: rig.count_in(JobState.ADMITTED, JobState.SUBMITTING) == 0, "all posted")
    for _ in range(6):  # pollers race too: the lease lets one at a time read the feed
        rig.ctx.enqueue(TaskName.POLL, rig.a_id)

    rig.assert_converged(ids)
    # No double processing: one POST per job, and no job asked for a second token (jobs to
    # one destination may share an upload_setup call).
    assert rig.admin_a.counters()["requests"]["POST /ops/transfers"] == len(ids)
    assert rig.admin_b.counters()["requests"]["POST /files/upload_setup"] <= len(ids)
    assert first.received(TaskName.SUBMIT) > 0, first.tail()
    assert second.received(TaskName.SUBMIT) > 0, second.tail()
