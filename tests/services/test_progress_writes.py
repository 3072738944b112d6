"""Progress is written when it matters: a state change at once, a byte count at most every
ORCH_PROGRESS_SECONDS (real hstssim nodes, SQLite and PostgreSQL)."""

from __future__ import annotations

import os
from typing import Any

import pytest
from sqlalchemy import select

from orchestrator.db.tables import AttemptRow
from orchestrator.domain.states import JobState
from orchestrator.services.conveyor.polling import poll_node
from tests.services.conftest import Stack
from tests.support.sim import client_for, wait_for, write_tree
from tests.support.stack import job_states, run_tasks


@pytest.fixture
def stack_settings() -> dict[str, Any]:
    return {"progress_seconds": 3600.0}


def attempt(stack: Stack, job_id: str) -> AttemptRow:
    with stack.ctx.sessions() as session:
        row = session.scalar(select(AttemptRow).where(AttemptRow.job_id == job_id))
        assert row is not None
        return row


def test_a_byte_count_waits_but_a_state_change_is_written_at_once(stack: Stack) -> None:
    write_tree(stack.root_a, {"prog/f.bin": os.urandom(300_000)})
    job_id = stack.new_job("prog", options={"target_rate_kbps": 400})
    run_tasks(stack.ctx, stack.tasks)
    remote_id = attempt(stack, job_id).remote_id
    assert remote_id is not None
    with client_for(stack.a) as client:
        wait_for(lambda: client.get_transfer(remote_id).bytes_transferred > 0, timeout=30)
        poll_node(stack.ctx, stack.a_id, owner="test-poller")  # running: written (a new state)
        first = attempt(stack, job_id)
        assert job_states(stack.ctx)[job_id] == JobState.RUNNING
        wait_for(
            lambda: client.get_transfer(remote_id).bytes_transferred > first.bytes_transferred,
            timeout=30,
        )
        poll_node(stack.ctx, stack.a_id, owner="test-poller")  # only bytes moved: not written
        second = attempt(stack, job_id)
        assert (second.bytes_transferred, second.last_seen_at) == (
            first.bytes_transferred,
            first.last_seen_at,
        )
        client.modify_transfer(remote_id, target_rate_kbps=100_000)  # finish now
        wait_for(lambda: client.get_transfer(remote_id).status.value == "completed", timeout=30)
    poll_node(stack.ctx, stack.a_id, owner="test-poller")  # the end: written at once

    assert job_states(stack.ctx)[job_id] == JobState.COMPLETED
    assert attempt(stack, job_id).bytes_transferred == 300_000
