"""Remediation per error class: each row of the table, produced by a real hstssim fault.

The back-off here is long (30 s): a job that completes within a test's few seconds after a
failure was resubmitted at once, as its row says, not after a back-off.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from orchestrator.db.tables import AlertRow, BreakerRow, JobRow, NodeRow
from orchestrator.domain.remediation import TABLE
from orchestrator.domain.states import JobState
from orchestrator.services.conveyor.breakers import Gates, release_node
from orchestrator.services.conveyor.jobs import get_job
from orchestrator.services.events import events_of
from orchestrator.services.nodes.registry import update_node
from orchestrator.services.views.jobs import attempts_of
from tests.services.conftest import Stack
from tests.support.alerts import write_alerts_file
from tests.support.sim import write_tree
from tests.support.stack import job_states, run_tasks, settle

OPERATIONS = Path(__file__).parents[2] / "docs" / "operations.md"
# Long enough that a hold is still on when the test looks at it on busy cores; the test moves
# the service's clock past it to let the probe go.
COOL_DOWN = 60.0


@pytest.fixture
def stack_settings(tmp_path: Path) -> dict[str, Any]:
    alerts = tmp_path / "alerts.yaml"
    write_alerts_file(
        alerts,
        {"ops": {"kind": "webhook", "url": "http://127.0.0.1:9/hook"}},
        node_channels=["ops"],
    )
    return {
        "alerts_file": alerts,
        "retry_backoff_seconds": 30.0,
        "retry_backoff_max_seconds": 60.0,
        "breaker_cool_down_seconds": COOL_DOWN,
        "breaker_cool_down_max_seconds": 2 * COOL_DOWN,
    }


def _story(stack: Stack, job_id: str) -> str:
    with stack.ctx.sessions() as session:
        return "\n".join(e.message for e in events_of(session, job_id))


def _alerts(stack: Stack, kind: str) -> list[AlertRow]:
    with stack.ctx.sessions() as session:
        return list(session.scalars(select(AlertRow).where(AlertRow.kind == kind)))


def test_the_table_in_code_is_the_table_in_the_docs() -> None:
    text = OPERATIONS.read_text()
    block = re.search(r"<!-- remediation-table -->\n(.*?)<!-- /remediation-table -->", text, re.S)
    assert block is not None, "docs/operations.md lost its remediation table"
    lines = block.group(1).strip().splitlines()[2:]
    documented = [tuple(cell.strip() for cell in line.strip("|").split(" | ")) for line in lines]
    in_code = [(r.failure, r.trigger, f"`{r.remedy.value}`", r.action) for r in TABLE]
    assert documented == in_code


def test_a_refused_token_gets_a_fresh_one_at_once(stack: Stack) -> None:
    write_tree(stack.root_a, {"t1/f.bin": b"token" * 100})
    stack.admin_a.settings(max_retries=0)
    stack.admin_b.fault(kind="reject_tokens")
    job_id = stack.new_job("t1")

    states = settle(stack.ctx, stack.tasks, [stack.a_id], timeout=20)

    assert states[job_id] == JobState.COMPLETED
    assert (stack.root_b / "in-t1" / "t1" / "f.bin").read_bytes() == b"token" * 100
    assert stack.admin_b.counters()["requests"]["POST /files/upload_setup"] == 2
    assert stack.admin_a.counters()["transfers_created"] == 2
    assert (
        "the destination refused the token (19 AUTH): a new upload_setup and attempt 2 at once"
        in _story(stack, job_id)
    )


def test_a_token_refused_twice_stops_the_job(stack: Stack) -> None:
    write_tree(stack.root_a, {"t2/f.bin": b"t"})
    stack.admin_a.settings(max_retries=0)
    stack.admin_b.fault(kind="reject_tokens", count=2)
    job_id = stack.new_job("t2")

    states = settle(stack.ctx, stack.tasks, [stack.a_id], timeout=20)

    assert states[job_id] == JobState.FAILED
    with stack.ctx.sessions() as session:
        job = get_job(session, job_id)
        assert len(attempts_of(session, job_id)) == 2, "no loop: two tokens, then a stop"
    assert job.reason is not None
    assert "a fresh token was refused too, so the token is not the cause" in job.reason
    assert "token_encryption_key" in job.reason


def test_an_existing_equal_file_counts_as_done(stack: Stack) -> None:
    write_tree(stack.root_a, {"e1/f.bin": b"same bytes"})
    write_tree(stack.root_b, {"in-e1/e1/f.bin": b"same bytes"})
    stack.admin_a.fault(kind="fail_transfers", error_code=42, error_desc="file exists: f.bin")
    job_id = stack.new_job("e1")

    states = settle(stack.ctx, stack.tasks, [stack.a_id], timeout=20)

    assert states[job_id] == JobState.COMPLETED
    assert stack.admin_a.counters()["transfers_created"] == 1, "never posted again"
    story = _story(stack, job_id)
    assert "a destination file exists (42 ALREADY_EXISTS): its size is compared" in story
    assert "the destination already holds the source's 1 file(s), equal in size" in story


def test_an_existing_different_file_fails_naming_it(stack: Stack) -> None:
    write_tree(stack.root_a, {"e2/f.bin": b"seven b"})
    write_tree(stack.root_b, {"in-e2/e2/f.bin": b"five!"})
    stack.admin_a.fault(kind="fail_transfers", error_code=42)
    job_id = stack.new_job("e2")

    states = settle(stack.ctx, stack.tasks, [stack.a_id], timeout=20)

    assert states[job_id] == JobState.FAILED
    assert stack.admin_a.counters()["transfers_created"] == 1, "never posted again"
    with stack.ctx.sessions() as session:
        reason = get_job(session, job_id).reason
    assert reason == (
        "destination file node-b:/in-e2/e2/f.bin exists and differs from the source (5 bytes "
        'there, 7 on node-a); set the job\'s options.overwrite ("always", or "diff" to skip '
        "equal files)"
    )


def test_a_full_destination_holds_its_jobs_until_a_probe_succeeds(stack: Stack) -> None:
    write_tree(stack.root_a, {"d1/f.bin": b"1" * 1000, "d2/f.bin": b"2" * 1000})
    stack.admin_a.settings(max_retries=0)
    stack.admin_a.fault(kind="fail_transfers", error_code=25, error_desc="no space left on disk")
    first = stack.new_job("d1")

    def held(states: dict[str, str]) -> bool:
        with stack.ctx.sessions() as session:
            job = session.get(JobRow, first)
            return job is not None and "is held" in (job.waiting_reason or "")

    settle(stack.ctx, stack.tasks, [stack.a_id], until=held, timeout=20)
    second = stack.new_job("d2")
    run_tasks(stack.ctx, stack.tasks)
    with stack.ctx.sessions() as session:
        job = session.get(JobRow, second)
        assert job is not None and job.state == JobState.QUEUED
        waiting = job.waiting_reason or ""
    assert re.fullmatch(
        r"destination node node-b is held: no space left on disk \(25 NO_SPACE_LEFT\) at "
        r"\d\d:\d\d:\d\d UTC; next probe at \d\d:\d\d:\d\d UTC \(or: nodes resume node-b\)",
        waiting,
    ), waiting
    assert len(_alerts(stack, "destination_held")) == 1

    stack.ctx.clock = lambda: datetime.now(UTC) + timedelta(seconds=COOL_DOWN + 1)
    states = settle(stack.ctx, stack.tasks, [stack.a_id], timeout=20)

    assert states[first] == states[second] == JobState.COMPLETED
    assert stack.admin_a.counters()["transfers_created"] == 3
    story = _story(stack, first) + _story(stack, second)
    assert "admitted as the probe of destination node node-b" in story
    assert "destination node node-b released: this job got through" in story
    assert len(_alerts(stack, "destination_held")) == 1, "one alert per hold"
    with stack.ctx.sessions() as session:
        assert session.scalars(select(BreakerRow)).all() == [] or all(
            row.state == "closed" for row in session.scalars(select(BreakerRow))
        )


def test_an_operator_resume_releases_a_held_destination(stack: Stack) -> None:
    write_tree(stack.root_a, {"r1/f.bin": b"r"})
    stack.admin_a.settings(max_retries=0)
    stack.admin_a.fault(kind="fail_transfers", error_code=25)
    job_id = stack.new_job("r1")
    settle(
        stack.ctx,
        stack.tasks,
        [stack.a_id],
        until=lambda _: bool(_gates(stack).rows),
        timeout=20,
    )

    assert release_node(stack.ctx, "node-b") == 1

    assert not _gates(stack).rows
    states = settle(stack.ctx, stack.tasks, [stack.a_id], timeout=20)
    assert states[job_id] == JobState.COMPLETED


def _gates(stack: Stack) -> Gates:
    with stack.ctx.sessions() as session:
        return Gates.load(session)


def test_refused_credentials_disable_the_node_once_with_one_alert(stack: Stack) -> None:
    write_tree(stack.root_a, {"c1/f.bin": b"1", "c2/f.bin": b"2"})
    update_node(stack.ctx, "node-b", {"secret": SecretStr("not-the-password")})
    first, second = stack.new_job("c1"), stack.new_job("c2")

    settle(
        stack.ctx,
        stack.tasks,
        [stack.a_id],
        until=lambda s: s[first] == s[second] == JobState.QUEUED and _waiting(stack, first),
        timeout=20,
    )

    with stack.ctx.sessions() as session:
        node = session.scalar(select(NodeRow).where(NodeRow.name == "node-b"))
        assert node is not None and not node.enabled
        jobs = [get_job(session, job_id) for job_id in (first, second)]
    for job in jobs:
        assert job.waiting_reason == "destination node node-b is disabled"
    assert jobs[0].reason is not None and jobs[0].reason.startswith(
        "node node-b refused our credentials (HTTP 401 on upload_setup); it is disabled: fix "
        "its credentials (hsts-orchestrator nodes update node-b), then hsts-orchestrator nodes "
        "enable node-b"
    )
    (alert,) = _alerts(stack, "node_disabled")
    assert alert.payload["event"] == "node.disabled"
    assert "not-the-password" not in str(alert.payload)
    assert stack.admin_a.counters()["transfers_created"] == 0
    assert set(job_states(stack.ctx).values()) == {JobState.QUEUED}


def _waiting(stack: Stack, job_id: str) -> bool:
    with stack.ctx.sessions() as session:
        job = session.get(JobRow, job_id)
        return job is not None and bool(job.waiting_reason)


def test_a_missing_source_fails_at_once_with_the_path(stack: Stack) -> None:
    write_tree(stack.root_a, {"m1/f.bin": b"m"})
    stack.admin_a.fault(kind="fail_transfers", error_code=4)
    on_the_node = stack.new_job("m1")
    before_posting = stack.new_job("nowhere")

    states = settle(stack.ctx, stack.tasks, [stack.a_id], timeout=20)

    assert states[on_the_node] == states[before_posting] == JobState.FAILED
    with stack.ctx.sessions() as session:
        found_missing = get_job(session, on_the_node)
        checked = get_job(session, before_posting)
        assert len(attempts_of(session, on_the_node)) == 1
    assert found_missing.reason is not None
    assert found_missing.reason.startswith("source path m1 on node-a: ")
    assert found_missing.reason.endswith("(4 NO_SUCH_FILE)")
    assert checked.reason == "source path nowhere does not exist on node-a"


def test_a_pull_whose_token_the_source_refuses_names_the_source_and_download_setup(
    stack: Stack,
) -> None:
    # A pull's token comes from the source (download_setup), whose data plane checks it.
    write_tree(stack.root_a, {"t3/f.bin": b"pull" * 100})
    stack.admin_b.settings(max_retries=0)
    stack.admin_a.fault(kind="reject_tokens", count=2)
    job_id = stack.new_job("t3", mode="pull")

    states = settle(stack.ctx, stack.tasks, [stack.b_id], timeout=20)

    assert states[job_id] == JobState.FAILED
    assert stack.admin_a.counters()["requests"]["POST /files/download_setup"] == 2
    assert (
        "the source refused the token (19 AUTH): a new download_setup and attempt 2 at once"
        in _story(stack, job_id)
    )
    with stack.ctx.sessions() as session:
        reason = get_job(session, job_id).reason
    assert reason is not None and "check the source's transfer user" in reason
