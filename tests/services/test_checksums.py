"""Checksum reports: a job asking for file checksums ends once its files are stored."""

from __future__ import annotations

import hashlib
import os

from sqlalchemy import func, select

from orchestrator.db.tables import JobFileRow
from orchestrator.domain.states import JobState
from orchestrator.services.conveyor.checksums import collect_files
from orchestrator.services.conveyor.jobs import get_job
from orchestrator.services.conveyor.polling import poll_node
from orchestrator.services.conveyor.reconcile import sweep
from orchestrator.services.views.stored_files import stored_files
from orchestrator.taskqueue import TaskName
from tests.services.conftest import Stack
from tests.support.sim import wait_for, write_tree
from tests.support.stack import run_tasks, settle


def test_sha256_of_each_file_is_stored_and_the_job_completes(stack: Stack) -> None:
    files = {"c1/a.bin": os.urandom(250_000), "c1/sub/b.txt": b"bee\n", "c1/empty": b""}
    write_tree(stack.root_a, files)
    job_id = stack.new_job(
        "c1", options={"file_checksum": "sha256", "require_checksums": True, "overwrite": "always"}
    )

    states = settle(stack.ctx, stack.tasks, [stack.a_id])

    assert states[job_id] == JobState.COMPLETED
    page = stored_files(stack.ctx, job_id)
    assert page.total == len(files)
    assert {f.path: (f.checksum_type, f.checksum) for f in page.items} == {
        f"/in-c1/{rel}": ("sha-256", hashlib.sha256(data).hexdigest())
        for rel, data in files.items()
    }
    assert (stack.root_b / "in-c1/c1/a.bin").read_bytes() == files["c1/a.bin"]
    assert stack.admin_a.counters()["transfers_created"] == 1


def test_a_required_checksum_the_node_did_not_report_needs_attention(stack: Stack) -> None:
    # No file_checksum in the spec: the node reports "none" for every file.
    write_tree(stack.root_a, {"c2/only.bin": os.urandom(1000)})
    job_id = stack.new_job("c2", options={"require_checksums": True, "overwrite": "always"})

    states = settle(stack.ctx, stack.tasks, [stack.a_id])

    assert states[job_id] == JobState.NEEDS_ATTENTION
    with stack.ctx.sessions() as session:
        reason = get_job(session, job_id).reason
    assert reason is not None and "/in-c2/c2/only.bin" in reason and "checksum" in reason
    (stored,) = stored_files(stack.ctx, job_id).items
    assert (stored.checksum_type, stored.checksum) == ("none", None)


def test_files_the_node_forgot_make_a_job_requiring_checksums_need_attention(
    stack: Stack,
) -> None:
    write_tree(stack.root_a, {"c4/f.bin": os.urandom(3000)})
    job_id = stack.new_job(
        "c4", options={"file_checksum": "sha-512", "require_checksums": True, "overwrite": "always"}
    )
    run_tasks(stack.ctx, stack.tasks)
    reader = (TaskName.COLLECT_FILES, (job_id,))

    def completed_on_the_node() -> bool:
        poll_node(stack.ctx, stack.a_id, owner="test-poller")
        return reader in stack.tasks.take()

    wait_for(completed_on_the_node)
    stack.admin_a.expire()  # the node's activity retention passed before the files were read
    collect_files(stack.ctx, job_id)
    with stack.ctx.sessions() as session:
        job = get_job(session, job_id)
    assert job.state == JobState.NEEDS_ATTENTION
    assert job.reason is not None and "no longer lists the transfer's files" in job.reason
    assert stored_files(stack.ctx, job_id).total == 0


def test_a_lost_reader_is_sent_again_by_the_sweeper_and_a_second_run_stores_nothing_twice(
    stack: Stack,
) -> None:
    write_tree(stack.root_a, {"c3/f.bin": os.urandom(5000)})
    job_id = stack.new_job("c3", options={"file_checksum": "md5"})
    run_tasks(stack.ctx, stack.tasks)
    reader = (TaskName.COLLECT_FILES, (job_id,))

    def completed_on_the_node() -> bool:
        poll_node(stack.ctx, stack.a_id, owner="test-poller")
        return reader in stack.tasks.take()  # taken and dropped: a lost message

    wait_for(completed_on_the_node)
    with stack.ctx.sessions() as session:
        assert get_job(session, job_id).state in (JobState.SUBMITTED, JobState.RUNNING)

    def sent_again() -> bool:
        sweep(stack.ctx)
        return reader in stack.tasks.take()

    wait_for(sent_again)
    stack.admin_a.fault(kind="http_error", endpoint="GET /ops/transfers/{id}", status=503)
    assert "503" in collect_files(stack.ctx, job_id)  # the node stumbles: nothing changes
    with stack.ctx.sessions() as session:
        assert get_job(session, job_id).state in (JobState.SUBMITTED, JobState.RUNNING)
    wait_for(sent_again)
    assert "completed" in collect_files(stack.ctx, job_id)
    assert "not waiting" in collect_files(stack.ctx, job_id)  # a redelivery changes nothing
    with stack.ctx.sessions() as session:
        assert get_job(session, job_id).state == JobState.COMPLETED
        count = session.scalar(select(func.count()).where(JobFileRow.job_id == job_id))
    assert count == 1


def test_a_pull_job_reads_its_files_from_the_destination_that_ran_it(stack: Stack) -> None:
    # A pull's transfer is held by the destination: the source has no record of it.
    files = {"c9/a.bin": os.urandom(40_000), "c9/b.txt": b"bee\n"}
    write_tree(stack.root_a, files)
    job_id = stack.new_job(
        "c9",
        mode="pull",
        options={"file_checksum": "sha256", "require_checksums": True, "overwrite": "always"},
    )

    states = settle(stack.ctx, stack.tasks, [stack.b_id])

    assert states[job_id] == JobState.COMPLETED
    page = stored_files(stack.ctx, job_id)
    assert {f.path: f.checksum for f in page.items} == {
        f"/in-c9/{rel}": hashlib.sha256(data).hexdigest() for rel, data in files.items()
    }
