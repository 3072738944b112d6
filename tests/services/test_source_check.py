"""Source paths are checked on the source node (one /files/info per batch) before any POST."""

from __future__ import annotations

import logging
import os

import pytest

from orchestrator.db.tables import NodeRow
from orchestrator.domain.states import JobState
from orchestrator.services.conveyor.jobs import get_job
from orchestrator.services.conveyor.reconcile import sweep
from orchestrator.services.events import events_of
from orchestrator.services.views.jobs import attempts_of, show_job
from tests.services.conftest import Stack
from tests.support.sim import write_tree
from tests.support.stack import job_states, run_tasks, settle


def test_a_missing_source_fails_at_once_and_the_node_sees_no_transfer(stack: Stack) -> None:
    job_id = stack.new_job("nowhere")

    run_tasks(stack.ctx, stack.tasks)  # dispatch and submit; no poll

    reason = "source path nowhere does not exist on node-a"
    with stack.ctx.sessions() as session:
        job = get_job(session, job_id)
        assert (job.state, job.reason, job.next_attempt_at) == (JobState.FAILED, reason, None)
        (attempt,) = attempts_of(session, job_id)
        assert (attempt.status, attempt.remote_id) == ("abandoned", None)
        assert f"not posted: {reason}" in [e.message for e in events_of(session, job_id)]
    assert show_job(stack.ctx, job_id).reason == reason  # what the API, page and CLI show
    sweep(stack.ctx)  # nothing is left to retry it
    run_tasks(stack.ctx, stack.tasks)
    assert job_states(stack.ctx)[job_id] == JobState.FAILED
    requests = stack.admin_a.counters()["requests"]
    assert requests["POST /files/info"] == 1
    assert requests.get("POST /ops/transfers", 0) == 0
    assert stack.admin_b.counters()["requests"].get("POST /files/upload_setup", 0) == 0


def test_a_batch_posts_only_present_sources_with_their_sizes_before_the_first_poll(
    stack: Stack,
) -> None:
    with stack.ctx.sessions() as session:
        node = session.get(NodeRow, stack.a_id)
        assert node is not None
        node.root_path = "/area"  # the job's paths are read under the node's root
        session.commit()
    write_tree(stack.root_a, {"area/one.bin": os.urandom(3000), "area/two.bin": os.urandom(500)})
    write_tree(stack.root_a, {"area/folder/f": b"f", "stray.bin": b"outside the root"})
    # Without the node's own precalc the sizes found before posting must last every poll.
    no_precalc = {"precalculate_job_size": False}
    files = stack.new_job("files", source_paths=["one.bin", "/two.bin"], options=no_precalc)
    stray = stack.new_job("stray", source_paths=["stray.bin", "one.bin"])
    folder = stack.new_job("folder", source_paths=["folder"])

    run_tasks(stack.ctx, stack.tasks)

    with stack.ctx.sessions() as session:
        sized, missing, unsized = (get_job(session, i) for i in (files, stray, folder))
        assert (sized.state, sized.bytes_expected, sized.files_expected) == (
            JobState.SUBMITTED,
            3500,
            2,
        )
        assert missing.state == JobState.FAILED
        assert missing.reason == "source path stray.bin does not exist on node-a"
        assert (unsized.state, unsized.bytes_expected) == (JobState.SUBMITTED, None)
    assert show_job(stack.ctx, files).progress == "0% · 0 B of 3.50 KB · 0 of 2 files"
    assert stack.admin_a.counters()["requests"]["POST /files/info"] == 1, "one per batch"
    assert stack.admin_b.counters()["requests"]["POST /files/upload_setup"] == 1
    posted = {t["raw_spec"]["tags"]["orchestrator"]["job"] for t in stack.admin_a.transfers()}
    assert posted & {files, stray, folder} == {files, folder}, "the missing one never posted"

    states = settle(stack.ctx, stack.tasks, [stack.a_id])

    assert (states[files], states[folder]) == (JobState.COMPLETED, JobState.COMPLETED)
    with stack.ctx.sessions() as session:
        done = get_job(session, files)
        assert (done.bytes_transferred, done.bytes_expected, done.files_expected) == (3500, 3500, 2)


@pytest.mark.parametrize("status", [404, 503])
def test_a_node_whose_files_info_fails_still_gets_its_jobs_posted(
    stack: Stack, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    # 404: a node older than /files/info; 503: a node failing it for now.
    write_tree(stack.root_a, {"old0/f": b"0", "old1/f": b"1", "old2/f": b"2"})
    stack.new_job("old0")
    run_tasks(stack.ctx, stack.tasks)  # the node answers: whatever was logged before is over
    stack.admin_a.fault(kind="http_error", endpoint="POST /files/info", status=status, count=None)
    caplog.set_level(logging.DEBUG, logger="orchestrator.services.conveyor.sourcecheck")

    first = stack.new_job("old1")
    run_tasks(stack.ctx, stack.tasks)
    second = stack.new_job("old2")
    run_tasks(stack.ctx, stack.tasks)  # a second batch

    with stack.ctx.sessions() as session:
        assert {get_job(session, i).state for i in (first, second)} == {JobState.SUBMITTED}
    requests = stack.admin_a.counters()["requests"]
    assert (requests["POST /files/info"], requests["POST /ops/transfers"]) == (3, 3)
    told = [r for r in caplog.records if "not checked before posting" in r.getMessage()]
    assert [r.levelno for r in told] == [logging.WARNING, logging.DEBUG], "why, once"
    assert f"HTTP {status}" in told[0].getMessage()
