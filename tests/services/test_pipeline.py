"""A job from QUEUED to its end through the services, against real nodes and databases."""

from __future__ import annotations

import os
import re
import time
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError

from orchestrator.db.tables import AttemptRow, JobRow, NodeCursorRow, NodeRow
from orchestrator.domain.jobs import JobSpec
from orchestrator.domain.states import JobState
from orchestrator.domain.transfers import UploadRequest
from orchestrator.errors import TransferSetupError
from orchestrator.services.conveyor import submission
from orchestrator.services.conveyor.control import change_rate
from orchestrator.services.conveyor.dispatch import dispatch
from orchestrator.services.conveyor.jobs import JobRejected, create_job, get_job
from orchestrator.services.conveyor.polling import _take_lease, poll_node
from orchestrator.services.conveyor.submission import _claim, submit
from orchestrator.services.events import events_of
from orchestrator.services.views.jobs import attempts_of
from orchestrator.taskqueue import TaskName
from tests.services.conftest import Stack
from tests.support.sim import client_for, read_tree, write_tree
from tests.support.stack import assert_story_of_a_clean_run, run_tasks, settle


def new_job(stack: Stack, folder: str, **spec: object) -> str:
    data = {
        "source_node": "node-a",
        "source_paths": [folder],
        "destination_node": "node-b",
        "destination_path": f"in-{folder}",
        **spec,
    }
    return create_job(stack.ctx, JobSpec.model_validate(data)).job.id


def test_directory_job_completes_byte_identical_and_the_log_tells_the_story(
    stack: Stack,
) -> None:
    files = {
        "d1/empty": b"",
        "d1/small.txt": b"small\n",
        "d1/medium.bin": os.urandom(300_000),
        "d1/large.bin": os.urandom(2_500_000),
        "d1/nested/deep/leaf": os.urandom(1234),
    }
    write_tree(stack.root_a, files)
    job_id = new_job(stack, "d1", options={"overwrite": "always"})

    states = settle(stack.ctx, stack.tasks, [stack.a_id])

    assert states[job_id] == JobState.COMPLETED
    copied = read_tree(stack.root_b / "in-d1")
    assert copied == files
    with stack.ctx.sessions() as session:
        job = get_job(session, job_id)
        assert job.bytes_transferred == sum(len(v) for v in files.values())
        assert job.files_completed == len(files)
        assert job.finished_at is not None
        (attempt,) = attempts_of(session, job_id)
        assert attempt.remote_id
        assert attempt.status == "completed"
        assert_story_of_a_clean_run(session, job_id)
    requests = stack.admin_a.counters()["requests"]
    assert requests["POST /ops/transfers"] == 1
    assert stack.admin_b.counters()["requests"]["POST /files/upload_setup"] == 1
    assert requests.get("GET /ops/transfers/{id}", 0) == 0, "tracking uses the feed only"


def test_idempotency_key_returns_the_same_job(stack: Stack) -> None:
    spec = JobSpec(
        source_node="node-a", source_paths=["x"], destination_node="node-b", destination_path="y"
    )
    first = create_job(stack.ctx, spec, idempotency_key="k-1")
    second = create_job(stack.ctx, spec, idempotency_key="k-1")
    assert first.created
    assert not second.created
    assert second.job.id == first.job.id
    assert [t for t, _ in stack.tasks.take()] == [TaskName.DISPATCH]


def test_retryable_failure_makes_a_new_attempt_that_completes(stack: Stack) -> None:
    write_tree(stack.root_a, {"r1/f.bin": os.urandom(50_000)})
    stack.admin_a.settings(max_retries=0)
    stack.admin_a.fault(kind="fail_transfers", error_code=36)
    job_id = new_job(stack, "r1")

    states = settle(stack.ctx, stack.tasks, [stack.a_id])

    assert states[job_id] == JobState.COMPLETED
    with stack.ctx.sessions() as session:
        first, second = attempts_of(session, job_id)
        assert first.status == "failed"
        assert first.error_code == 36
        assert second.status == "completed"
        moves = [e.to_state for e in events_of(session, job_id) if e.kind == "state"]
    assert "retry_wait" in moves
    assert stack.admin_a.counters()["transfers_created"] == 2
    assert (stack.root_b / "in-r1" / "r1" / "f.bin").exists()


def test_permanent_failure_fails_with_the_code_and_text(stack: Stack) -> None:
    write_tree(stack.root_a, {"p1/f.bin": b"p"})
    stack.admin_a.settings(max_retries=0)
    stack.admin_a.fault(kind="fail_transfers", error_code=5)  # 19 gets a fresh token first
    job_id = new_job(stack, "p1")

    states = settle(stack.ctx, stack.tasks, [stack.a_id])

    assert states[job_id] == JobState.FAILED
    with stack.ctx.sessions() as session:
        job = get_job(session, job_id)
        assert job.error_code == 5
        assert job.error_text
        assert job.reason is not None and "5" in job.reason and "NO_PERMS" in job.reason
        assert len(attempts_of(session, job_id)) == 1, "a permanent code is not retried"


def test_retries_stop_at_max_attempts(stack: Stack) -> None:
    write_tree(stack.root_a, {"m1/f.bin": b"m"})
    stack.admin_a.settings(max_retries=0)
    stack.admin_a.fault(kind="fail_transfers", error_code=16, count=5)
    job_id = new_job(stack, "m1", max_attempts=2)

    states = settle(stack.ctx, stack.tasks, [stack.a_id])

    assert states[job_id] == JobState.FAILED
    with stack.ctx.sessions() as session:
        assert len(attempts_of(session, job_id)) == 2


def test_failed_with_code_zero_needs_attention(stack: Stack) -> None:
    write_tree(stack.root_a, {"z1/f.bin": b"z"})
    stack.admin_a.fault(kind="failed_code_zero")
    job_id = new_job(stack, "z1")

    states = settle(stack.ctx, stack.tasks, [stack.a_id])

    assert states[job_id] == JobState.NEEDS_ATTENTION
    with stack.ctx.sessions() as session:
        assert "no error code" in (get_job(session, job_id).reason or "")


def test_unanswered_post_is_adopted_by_tag_not_posted_twice(stack: Stack) -> None:
    write_tree(stack.root_a, {"amb/f.bin": os.urandom(10_000)})
    stack.admin_a.fault(kind="hang", endpoint="POST /ops/transfers", seconds=7, after_effect=True)
    job_id = new_job(stack, "amb")

    states = settle(stack.ctx, stack.tasks, [stack.a_id], timeout=40)

    assert states[job_id] == JobState.COMPLETED
    assert stack.admin_a.counters()["transfers_created"] == 1
    with stack.ctx.sessions() as session:
        (attempt,) = attempts_of(session, job_id)
        assert attempt.remote_id
        messages = " ".join(e.message for e in events_of(session, job_id))
    assert "adopted" in messages or "POST" in messages


def test_a_poll_that_reads_the_transfer_before_its_post_is_recorded_keeps_the_post_time(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real workers race here (docs/development.md): a poll lists the new transfer between the
    POST's answer and the submit's record, matches it by its tag and moves the job on. The
    record then keeps the poll's status but still says when the transfer was posted."""
    write_tree(stack.root_a, {"lead/f.bin": os.urandom(20_000)})
    job_id = new_job(stack, "lead", options={"target_rate_kbps": 40})  # still running when read
    polled: list[int] = []

    def read_first(record: Any) -> Any:
        def recording(*args: Any, **kwargs: Any) -> Any:
            polled.append(poll_node(stack.ctx, stack.a_id, owner="racing-poller").changed)
            return record(*args, **kwargs)

        return recording

    monkeypatch.setattr(submission, "_store_remote_id", read_first(submission._store_remote_id))
    monkeypatch.setattr(submission, "_store_remote_ids", read_first(submission._store_remote_ids))
    run_tasks(stack.ctx, stack.tasks)
    monkeypatch.undo()

    assert polled, "the submit recorded no POST"
    with stack.ctx.sessions() as session:
        (attempt,) = attempts_of(session, job_id)
        job = get_job(session, job_id)
        story = [e.to_state for e in events_of(session, job_id) if e.kind == "state"]
        assert job.state == JobState.RUNNING
        assert attempt.status == "running"
        assert attempt.remote_id
        assert attempt.submitted_at is not None
        assert attempt.post_started_at is not None
        assert attempt.post_started_at <= attempt.submitted_at
    assert story[-2:] == [JobState.SUBMITTING, JobState.RUNNING]
    change_rate(stack.ctx, job_id, target_rate_kbps=100_000)
    assert settle(stack.ctx, stack.tasks, [stack.a_id])[job_id] == JobState.COMPLETED
    assert stack.admin_a.counters()["transfers_created"] == 1


def test_refused_post_is_retried_without_a_duplicate(stack: Stack) -> None:
    write_tree(stack.root_a, {"s503/f.bin": b"s"})
    stack.admin_a.fault(kind="http_error", endpoint="POST /ops/transfers", status=503)
    job_id = new_job(stack, "s503")

    states = settle(stack.ctx, stack.tasks, [stack.a_id])

    assert states[job_id] == JobState.COMPLETED
    assert stack.admin_a.counters()["transfers_created"] == 1
    with stack.ctx.sessions() as session:
        assert get_job(session, job_id).submit_failures == 1


def test_crash_after_the_attempt_row_and_before_the_post_posts_once(stack: Stack) -> None:
    write_tree(stack.root_a, {"c1/f.bin": b"c"})
    job_id = new_job(stack, "c1")
    run_tasks_until_admitted(stack)
    # A worker takes the job and dies right after committing the attempt row:
    assert not isinstance(_claim(stack.ctx, job_id), str)
    stack.tasks.take()  # the lost message

    states = settle(stack.ctx, stack.tasks, [stack.a_id], timeout=30)

    assert states[job_id] == JobState.COMPLETED
    assert stack.admin_a.counters()["transfers_created"] == 1


def run_tasks_until_admitted(stack: Stack) -> None:
    for task, _ in stack.tasks.take():
        if task == TaskName.DISPATCH:
            dispatch(stack.ctx)
    stack.tasks.take()


def test_redelivered_submit_is_harmless(stack: Stack) -> None:
    write_tree(stack.root_a, {"dup/f.bin": b"d"})
    job_id = new_job(stack, "dup")
    run_tasks_until_admitted(stack)
    first = str(submit(stack.ctx, job_id))
    second = str(submit(stack.ctx, job_id))
    assert f"job {job_id}: submitted as node transfer " in first
    assert " on node-a (attempt 1)" in first
    assert "nothing to submit" in second or "another worker" in second
    assert stack.admin_a.counters()["transfers_created"] == 1


def test_dispatch_respects_node_limits_and_says_why(stack: Stack) -> None:
    with stack.ctx.sessions() as session:
        node = session.get(NodeRow, stack.a_id)
        assert node is not None
        node.max_outbound = 1
        session.commit()
    write_tree(stack.root_a, {"l1/f": b"1", "l2/f": b"2"})
    slow = {"target_rate_kbps": 100}
    first = new_job(stack, "l1", priority=5, options=slow)
    second = new_job(stack, "l2")
    run_tasks(stack.ctx, stack.tasks)
    with stack.ctx.sessions() as session:
        assert get_job(session, first).state != JobState.QUEUED
        waiting = get_job(session, second)
        assert waiting.state == JobState.QUEUED
        assert waiting.waiting_reason is not None
        assert "node-a is at its limit (1 active)" in waiting.waiting_reason
    states = settle(stack.ctx, stack.tasks, [stack.a_id])
    assert set(states.values()) == {JobState.COMPLETED}


def test_node_restart_while_transfers_run_converges(stack: Stack) -> None:
    write_tree(stack.root_a, {f"nr{i}/f.bin": os.urandom(200_000) for i in range(3)})
    ids = [new_job(stack, f"nr{i}", options={"target_rate_kbps": 500}) for i in range(3)]
    settle(
        stack.ctx,
        stack.tasks,
        [stack.a_id],
        until=lambda s: all(s[i] == JobState.RUNNING for i in ids),
    )
    stack.admin_a.restart()  # history and cursor gone while all three run

    states = settle(stack.ctx, stack.tasks, [stack.a_id], timeout=40)

    assert all(states[i] == JobState.COMPLETED for i in ids)
    assert stack.admin_a.counters()["transfers_created"] == 3
    with stack.ctx.sessions() as session:
        cursor = session.get(NodeCursorRow, stack.a_id)
        assert cursor is not None and cursor.iteration_token is not None


def test_expired_record_is_retried_and_completes(stack: Stack) -> None:
    write_tree(stack.root_a, {"ex/f.bin": os.urandom(20_000)})
    job_id = new_job(stack, "ex", options={"overwrite": "diff"})
    run_tasks(stack.ctx, stack.tasks)
    # The transfer ends and its record expires before any poll saw it; the feed is gone too.
    time.sleep(1.5)
    stack.admin_a.expire(0)
    stack.admin_a.restart()
    stack.ctx.settings = stack.ctx.settings.model_copy(update={"unseen_check_seconds": 0.1})

    states = settle(stack.ctx, stack.tasks, [stack.a_id], timeout=30)

    assert states[job_id] == JobState.COMPLETED
    with stack.ctx.sessions() as session:
        attempts = attempts_of(session, job_id)
    assert [a.status for a in attempts] == ["lost", "completed"]


def test_two_pollers_never_hold_one_node(stack: Stack) -> None:
    held, _, _, _ = _take_lease(stack.ctx, stack.a_id, "poller-1")
    assert held
    assert poll_node(stack.ctx, stack.a_id, "poller-2").skipped == "another poller holds this node"


def locking(engine: Any) -> str:
    """How a row-locking read ends on this database (SQLite has one writer, and no clause)."""
    return "" if engine.dialect.name == "sqlite" else " FOR UPDATE( OF attempts)?"


def test_a_poll_the_database_fails_lets_the_node_go_for_its_retry(stack: Stack) -> None:
    write_tree(stack.root_a, {"dl/f.txt": b"read again"})
    job_id = new_job(stack, "dl")
    run_tasks(stack.ctx, stack.tasks)
    engine = stack.ctx.sessions.kw["bind"]

    seen: list[str] = []

    def deadlocked(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(" ".join(statement.split()))
        if statement.lstrip().startswith("UPDATE attempts"):  # as a deadlock victim's page
            raise OperationalError(statement, {}, Exception("deadlock detected"))

    event.listen(engine, "before_cursor_execute", deadlocked)
    try:
        with pytest.raises(OperationalError):
            poll_node(stack.ctx, stack.a_id, "poller-1")
    finally:
        event.remove(engine, "before_cursor_execute", deadlocked)
    # The page locked its attempts as it read them, in id order, before writing any row
    # (a submit's record locks its own first the same way: the two cannot deadlock).
    read = next(i for i, sql in enumerate(seen) if sql.startswith("SELECT attempts.id"))
    assert re.search(r"ORDER BY attempts\.id" + locking(engine) + "$", seen[read]), seen[read]
    written = ("UPDATE attempts", "UPDATE jobs", "INSERT INTO job")
    assert not [sql for sql in seen[:read] if sql.startswith(written)]
    with stack.ctx.sessions() as session:
        cursor = session.get(NodeCursorRow, stack.a_id)
        assert cursor is not None and cursor.lease_owner is None
        assert cursor.last_error == "poll failed: OperationalError"
    # the retry reads the node at once, not when the lease would have run out
    assert not poll_node(stack.ctx, stack.a_id, "poller-2").skipped
    assert settle(stack.ctx, stack.tasks, [stack.a_id]) == {job_id: JobState.COMPLETED}


def test_unknown_node_is_rejected_with_the_field(stack: Stack) -> None:
    with pytest.raises(JobRejected) as caught:
        create_job(
            stack.ctx,
            JobSpec(
                source_node="nope",
                source_paths=["a"],
                destination_node="node-b",
                destination_path="x",
            ),
        )
    assert caught.value.field == "source_node"
    with stack.ctx.sessions() as session:
        assert session.scalar(select(JobRow.id)) is None
        assert session.scalar(select(AttemptRow.id)) is None


def test_jobs_to_one_destination_share_one_upload_setup(stack: Stack) -> None:
    write_tree(stack.root_a, {f"b{i}/f": os.urandom(100) for i in range(5)})
    ids = [new_job(stack, f"b{i}") for i in range(5)]

    states = settle(stack.ctx, stack.tasks, [stack.a_id])

    assert all(states[i] == JobState.COMPLETED for i in ids)
    assert stack.admin_b.counters()["requests"]["POST /files/upload_setup"] == 1
    assert stack.admin_a.counters()["requests"]["POST /ops/transfers"] == 5
    for i in range(5):
        assert (stack.root_b / f"in-b{i}" / f"b{i}" / "f").exists()


def test_one_refused_item_in_a_batch_fails_only_its_job(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real node refuses items only for paths outside its docroot, which create_job already
    # refuses, so the second item's answer is replaced with the refusal a node would send.
    write_tree(stack.root_a, {"ok1/f": b"1", "ok2/f": b"2"})
    good, bad = new_job(stack, "ok1"), new_job(stack, "ok2")
    destination = stack.ctx.clients.get(stack.b_id)
    real = destination.upload_setup

    def refuse_second(requests: list[UploadRequest]) -> list[object]:
        results: list[object] = list(real(requests))
        if len(results) == 2:
            results[1] = TransferSetupError(
                "Invalid pathname", node="node-b", operation="upload_setup[1]", code=404
            )
        return results

    monkeypatch.setattr(destination, "upload_setup", refuse_second)

    states = settle(stack.ctx, stack.tasks, [stack.a_id])

    assert states[good] == JobState.COMPLETED
    assert states[bad] == JobState.FAILED
    with stack.ctx.sessions() as session:
        assert "Invalid pathname" in (get_job(session, bad).reason or "")
    assert stack.admin_a.counters()["transfers_created"] == 1


def test_a_post_that_cannot_be_recorded_is_canceled_then_retried(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A database that stays down after a successful POST cannot be made on demand, so the
    # recording step is made to fail the way an unreachable database fails.
    # 20 KB at 40 kbps: the transfer is still running when the CANCEL reaches the node, however
    # busy the machine (a transfer that ends first would be adopted by its tag instead).
    write_tree(stack.root_a, {"rec/f.bin": os.urandom(20_000)})
    job_id = new_job(stack, "rec", options={"target_rate_kbps": 40})
    monkeypatch.setattr(submission.time, "sleep", lambda _s: None)

    def database_gone(*_args: object, **_kwargs: object) -> str:
        raise OperationalError("UPDATE attempts", {}, Exception("connection refused"))

    monkeypatch.setattr(submission, "_store_remote_id", database_gone)
    monkeypatch.setattr(submission, "_store_remote_ids", database_gone)  # a batch's POSTs
    with pytest.raises(RuntimeError, match="could not record transfer"):
        run_tasks(stack.ctx, stack.tasks)
    (transfer,) = [
        t
        for t in stack.admin_a.transfers()
        if (t["start_spec"].get("tags") or {}).get("orchestrator", {}).get("job") == job_id
    ]
    assert stack.admin_a.counters()["requests"]["CANCEL /ops/transfers/{id}"] == 1
    monkeypatch.undo()
    with client_for(stack.a) as client:  # the next attempt runs at full speed
        assert client.get_transfer(transfer["id"]).status.value == "canceled"
    change_rate(stack.ctx, job_id, target_rate_kbps=100_000)

    states = settle(stack.ctx, stack.tasks, [stack.a_id], timeout=40)

    assert states[job_id] == JobState.COMPLETED
    with stack.ctx.sessions() as session:
        first, second = attempts_of(session, job_id)
    assert first.remote_id == transfer["id"]
    assert first.status in ("abandoned", "canceled")
    assert second.status == "completed"
    assert stack.admin_a.counters()["transfers_created"] == 2
