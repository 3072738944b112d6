"""Jobs sent as queue messages are validated like REST bodies and created once per key."""

from __future__ import annotations

from orchestrator.services.conveyor.intake import submit_message
from orchestrator.services.conveyor.jobs import get_job
from orchestrator.taskqueue import TaskName
from tests.services.conftest import Stack
from tests.support.stack import job_states

BODY = {
    "source_node": "node-a",
    "source_paths": ["media/daily"],
    "destination_node": "node-b",
    "destination_path": "incoming",
    "options": {"overwrite": "diff"},
}


def test_a_valid_message_creates_one_job_per_key(stack: Stack) -> None:
    first = submit_message(stack.ctx, BODY, "msg-1")
    again = submit_message(stack.ctx, BODY, "msg-1")
    job_id = first.split()[1]
    assert first.endswith("queued")
    assert again == f"job {job_id} already known"
    with stack.ctx.sessions() as session:
        assert get_job(session, job_id).destination_path == "/incoming"
    assert [t for t, _ in stack.tasks.take()] == [TaskName.DISPATCH]
    other = submit_message(stack.ctx, {**BODY, "priority": 5}, "msg-1")
    assert other == "rejected: Idempotency-Key: this key was already used with different parameters"


def test_bad_messages_are_rejected_with_the_field(stack: Stack) -> None:
    assert submit_message(stack.ctx, {**BODY, "source_paths": ["../x"]}).startswith(
        "rejected: source_paths"
    )
    assert submit_message(stack.ctx, {**BODY, "options": {"cipher": "rot13"}}).startswith(
        "rejected: options.cipher"
    )
    assert submit_message(stack.ctx, "not an object").startswith("rejected:")
    assert submit_message(stack.ctx, {**BODY, "source_node": "nope"}).startswith(
        "rejected: source_node"
    )
    assert job_states(stack.ctx) == {}
