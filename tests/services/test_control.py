"""Cancel, pause, resume, rate, priority and retry act on the job and through the node."""

from __future__ import annotations

import os

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from orchestrator.crypto import SecretBox
from orchestrator.db.tables import NodeRow
from orchestrator.domain.jobs import JobSpec
from orchestrator.domain.states import JobState
from orchestrator.services.conveyor.control import (
    cancel_job,
    change_priority,
    change_rate,
    pause_job,
    resume_job,
    retry_job,
)
from orchestrator.services.conveyor.dispatch import dispatch
from orchestrator.services.conveyor.jobs import create_job, get_job
from orchestrator.services.conveyor.transitions import InvalidTransition
from orchestrator.services.nodes.registry import rotate_node_secrets
from orchestrator.services.views.jobs import attempts_of
from tests.services.conftest import Stack
from tests.support.sim import write_tree
from tests.support.stack import job_states, run_tasks, settle


def slow_job(stack: Stack, folder: str, size: int = 1_500_000) -> str:
    write_tree(stack.root_a, {f"{folder}/big.bin": os.urandom(size)})
    spec = JobSpec(
        source_node="node-a",
        source_paths=[folder],
        destination_node="node-b",
        destination_path=f"in-{folder}",
        options={"target_rate_kbps": 1000},
    )
    job_id = create_job(stack.ctx, spec).job.id
    run_tasks(stack.ctx, stack.tasks)
    return job_id


def until_state(stack: Stack, job_id: str, state: JobState) -> None:
    settle(stack.ctx, stack.tasks, [stack.a_id], until=lambda s: s[job_id] == state, timeout=20)


def test_cancel_a_queued_job_never_reaches_the_node(stack: Stack) -> None:
    spec = JobSpec(
        source_node="node-a", source_paths=["q"], destination_node="node-b", destination_path="q"
    )
    job_id = create_job(stack.ctx, spec).job.id
    assert cancel_job(stack.ctx, job_id) is JobState.CANCELED
    run_tasks(stack.ctx, stack.tasks)
    assert job_states(stack.ctx)[job_id] == JobState.CANCELED
    assert stack.admin_a.counters()["transfers_created"] == 0
    with pytest.raises(InvalidTransition):
        cancel_job(stack.ctx, job_id)


def test_cancel_a_running_job_cancels_its_transfer(stack: Stack) -> None:
    job_id = slow_job(stack, "cx")
    until_state(stack, job_id, JobState.RUNNING)
    cancel_job(stack.ctx, job_id)
    until_state(stack, job_id, JobState.CANCELED)
    assert stack.admin_a.counters()["requests"]["CANCEL /ops/transfers/{id}"] == 1
    assert not (stack.root_b / "in-cx" / "cx" / "big.bin").exists()


def test_pause_resume_and_rate_change_go_through_the_node(stack: Stack) -> None:
    job_id = slow_job(stack, "pr")
    until_state(stack, job_id, JobState.RUNNING)
    pause_job(stack.ctx, job_id)
    until_state(stack, job_id, JobState.PAUSED)
    with pytest.raises(InvalidTransition):
        pause_job(stack.ctx, job_id)
    resume_job(stack.ctx, job_id)
    change_rate(stack.ctx, job_id, target_rate_kbps=100_000)
    until_state(stack, job_id, JobState.COMPLETED)
    with stack.ctx.sessions() as session:
        assert get_job(session, job_id).options["target_rate_kbps"] == 100_000
    assert stack.admin_a.counters()["requests"]["PUT /ops/transfers/{id}"] == 3


def test_retry_of_a_failed_job_gets_a_fresh_budget(stack: Stack) -> None:
    write_tree(stack.root_a, {"rf/f": b"f"})
    stack.admin_a.settings(max_retries=0)
    stack.admin_a.fault(kind="fail_transfers", error_code=5)
    spec = JobSpec(
        source_node="node-a",
        source_paths=["rf"],
        destination_node="node-b",
        destination_path="rf",
        max_attempts=1,
    )
    job_id = create_job(stack.ctx, spec).job.id
    assert settle(stack.ctx, stack.tasks, [stack.a_id])[job_id] == JobState.FAILED
    retry_job(stack.ctx, job_id)
    assert settle(stack.ctx, stack.tasks, [stack.a_id])[job_id] == JobState.COMPLETED
    with stack.ctx.sessions() as session:
        assert [a.status for a in attempts_of(session, job_id)] == ["failed", "completed"]
    with pytest.raises(InvalidTransition):
        retry_job(stack.ctx, job_id)


def test_priority_decides_who_is_admitted_first(stack: Stack) -> None:
    with stack.ctx.sessions() as session:
        node = session.get(NodeRow, stack.a_id)
        assert node is not None
        node.max_outbound = 1
        session.commit()
    specs = [
        JobSpec(
            source_node="node-a",
            source_paths=[f"pp{i}"],
            destination_node="node-b",
            destination_path=f"pp{i}",
        )
        for i in range(3)
    ]
    ids = [create_job(stack.ctx, s).job.id for s in specs]
    change_priority(stack.ctx, ids[2], 50)
    stack.tasks.take()
    summary = dispatch(stack.ctx)
    assert summary.admitted == [ids[2]]
    with pytest.raises(ValueError, match="-100 to 100"):
        change_priority(stack.ctx, ids[0], 1000)


def test_rotation_re_encrypts_every_node_secret_with_the_newest_key(stack: Stack) -> None:
    old_box = stack.ctx.clients.box
    new_key = Fernet.generate_key()
    with stack.ctx.sessions() as session:
        nodes = session.scalars(select(NodeRow)).all()
        before = {n.name: old_box.decrypt(n.secret_encrypted).get_secret_value() for n in nodes}
    rotated = rotate_node_secrets(stack.ctx, SecretBox([new_key, *old_box_keys(stack)]))
    assert rotated == len(before) == 2
    with stack.ctx.sessions() as session:
        after = {
            n.name: SecretBox([new_key]).decrypt(n.secret_encrypted).get_secret_value()
            for n in session.scalars(select(NodeRow))
        }
    assert after == before


def old_box_keys(stack: Stack) -> list[bytes]:
    return [(stack.ctx.settings.data_dir / "secret.key").read_bytes().strip()]
