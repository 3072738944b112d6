"""A node whose registry entry cannot be used (its CA bundle) is a configuration error: a clear
422 on check, NEEDS_ATTENTION with the reason on submit, the node's last error on poll; never
an OSError or ssl.SSLError escaping as a 500 or a crashed task."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.db.tables import JobRow, NodeCursorRow
from orchestrator.domain.states import JobState
from orchestrator.services.conveyor.polling import poll_node
from orchestrator.services.nodes.registry import update_node
from tests.api.conftest import Api
from tests.api.conftest import api as api  # the fixture, for this module
from tests.services.conftest import Stack
from tests.support.sim import write_tree
from tests.support.stack import run_tasks


@pytest.fixture(params=["missing", "not-pem"])
def bad_bundle(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "missing":
        return str(tmp_path / "no-such-ca.pem")
    path = tmp_path / "garbage.pem"
    path.write_text("this is not a certificate\n")
    return str(path)


def test_check_answers_422_naming_the_ca_bundle(api: Api, bad_bundle: str) -> None:
    update_node(api.stack.ctx, "node-a", {"ca_bundle": bad_bundle})
    answer = api.client.post("/api/v1/nodes/node-a/check", headers=api.headers("read"))
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == "ca_bundle"
    assert "ca_bundle" in answer.json()["error"] and "cannot be used" in answer.json()["error"]


@pytest.mark.parametrize("which", ["node-a", "node-b"])
def test_submit_ends_in_needs_attention_with_the_reason(
    stack: Stack, bad_bundle: str, which: str
) -> None:
    update_node(stack.ctx, which, {"ca_bundle": bad_bundle})
    write_tree(stack.root_a, {"outgoing/f": b"o"})
    job_id = stack.new_job("outgoing")
    run_tasks(stack.ctx, stack.tasks)  # dispatch, then submit: neither may raise
    with stack.ctx.sessions() as session:
        job = session.get(JobRow, job_id)
        assert job is not None
        assert job.state == JobState.NEEDS_ATTENTION
        assert job.reason and "ca_bundle" in job.reason and which in job.reason
        assert job.next_attempt_at is None, "the sweeper does not send it again"


def test_poll_keeps_the_reason_as_the_nodes_last_error(stack: Stack, bad_bundle: str) -> None:
    update_node(stack.ctx, "node-a", {"ca_bundle": bad_bundle})
    summary = poll_node(stack.ctx, stack.a_id, owner="test")
    assert summary.error and "ca_bundle" in summary.error
    with stack.ctx.sessions() as session:
        cursor = session.get(NodeCursorRow, stack.a_id)
        assert cursor is not None and cursor.last_error == summary.error
        assert cursor.lease_owner is None, "the lease is released"
