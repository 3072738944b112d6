"""Admission that keeps the node's own queue empty: other clients' transfers on a node count
against its session limit, so our jobs wait in our queue (in our priority order, saying why),
never ``waiting`` on the node behind its first-come queue."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
import pytest
import respx

from orchestrator.domain.nodes import NodeConnection
from orchestrator.domain.states import JobState
from orchestrator.nodeapi.client import NodeClient
from orchestrator.services.conveyor.admission import admission_round
from orchestrator.services.conveyor.dispatch import NodeSessions
from orchestrator.services.conveyor.jobs import get_job
from orchestrator.services.events import events_of
from orchestrator.services.nodes.checks import ask, record_check
from orchestrator.services.nodes.registry import update_node
from orchestrator.services.views.nodes import show_node
from tests.services.conftest import Stack
from tests.support.sim import client_for, write_tree
from tests.support.stack import run_tasks, settle

SESSIONS = 3
FOREIGN = 2
LOGIN = {"username": "node_admin", "password": "not-a-real-one"}
RATE = 800  # kbps: 100 kB take about a second, long enough to see on the node


@pytest.fixture
def stack_settings() -> dict[str, Any]:
    return {"node_load_seconds": 5.0}


@pytest.fixture
def busy_node(stack: Stack) -> Iterator[list[str]]:
    """node-a runs at most 3 sessions, 2 of them other clients' transfers until canceled.

    The node's /info does not say its limit (node-api.md §7.1 lists no such setting), so the
    operator gives it as the node's max_outbound."""
    stack.admin_a.settings(max_concurrent_sessions=SESSIONS)
    update_node(stack.ctx, "node-a", {"max_outbound": SESSIONS})
    foreign = [
        stack.admin_a.foreign_transfer(peer="node-b", target_rate_kbps=500)["id"]
        for _ in range(FOREIGN)
    ]
    yield foreign
    with client_for(stack.a) as client:
        for remote_id in foreign:
            client.cancel_transfer(remote_id)
    stack.admin_a.settings(max_concurrent_sessions=20)


def reason_of(stack: Stack, job_id: str) -> tuple[str, str | None]:
    with stack.ctx.sessions() as session:
        row = get_job(session, job_id)
        return row.state, row.waiting_reason


def admitted_order(stack: Stack, job_ids: list[str]) -> list[str]:
    with stack.ctx.sessions() as session:
        moments = {
            job_id: next(e.id for e in events_of(session, job_id) if e.to_state == "admitted")
            for job_id in job_ids
        }
    return sorted(job_ids, key=moments.__getitem__)


def ours_on_node(stack: Stack) -> int:
    """Our transfers node-a holds that have not ended (waiting, running, retrying)."""
    ended = {"completed", "failed", "canceled"}
    return sum(
        1
        for t in stack.admin_a.transfers()
        if (t.get("start_spec", {}).get("tags") or {}).get("orchestrator")
        and t["status"] not in ended
    )


def test_our_jobs_wait_in_our_queue_and_the_higher_priority_one_takes_the_freed_session(
    stack: Stack, busy_node: list[str]
) -> None:
    # Folders of their own: the module's nodes are shared by both databases' runs, and a file
    # already at the destination would be skipped at once.
    q = [f"q{i}-{uuid4().hex[:6]}" for i in range(3)]
    write_tree(stack.root_a, {f"{q[i]}/f.bin": bytes([i]) * 100_000 for i in range(3)})
    first = stack.new_job(q[0], priority=5, options={"target_rate_kbps": RATE})
    assert "node-a 2" in admission_round(stack.ctx)  # the node runs two for someone else
    run_tasks(stack.ctx, stack.tasks)
    assert reason_of(stack, first)[0] != JobState.QUEUED

    low = stack.new_job(
        q[1], priority=1, options={"target_rate_kbps": RATE}
    )  # queued first: the node's own queue would favour it
    high = stack.new_job(q[2], priority=9, options={"target_rate_kbps": RATE})
    admission_round(stack.ctx)
    run_tasks(stack.ctx, stack.tasks)
    full = "node-a runs 2 transfers for other clients; 1 of its 3 sessions is ours"
    assert reason_of(stack, low) == (JobState.QUEUED, full)
    assert reason_of(stack, high) == (JobState.QUEUED, full)

    most = 0

    def never_beyond_the_node_s_sessions(states: dict[str, str]) -> bool:
        nonlocal most
        ours = ours_on_node(stack)
        most = max(most, ours)
        assert ours + FOREIGN <= SESSIONS, "one of ours would wait in the node's own queue"
        admission_round(stack.ctx)  # as beat does, so the count stays fresh
        return all(s == JobState.COMPLETED for s in states.values())

    settle(stack.ctx, stack.tasks, [stack.a_id], until=never_beyond_the_node_s_sessions)
    assert admitted_order(stack, [low, high]) == [high, low]
    assert most == 1
    assert stack.admin_a.counters()["transfers_created"] == 3  # one node transfer per job
    for job_id in (first, low, high):
        assert reason_of(stack, job_id) == (JobState.COMPLETED, None)
    assert (stack.root_b / f"in-{q[2]}" / q[2] / "f.bin").read_bytes() == bytes([2]) * 100_000


def test_without_a_count_the_node_s_limit_is_not_guessed(
    stack: Stack, busy_node: list[str]
) -> None:
    """A node never counted (or counting off) is held only by our own limits, as before."""
    write_tree(stack.root_a, {f"u{i}/f.bin": b"u" * 1_000 for i in range(2)})
    jobs = [stack.new_job(f"u{i}") for i in range(2)]
    run_tasks(stack.ctx, stack.tasks)
    assert all(reason_of(stack, j)[0] != JobState.QUEUED for j in jobs)
    settle(stack.ctx, stack.tasks, [stack.a_id])


def test_a_node_that_states_its_session_limit_is_held_to_it(stack: Stack) -> None:
    """The simulator's /info does not state a limit (nor does the reference say a node does):
    an /info that does is played by respx, from the simulator's own answer plus the setting."""
    stated = httpx.get(
        f"{stack.a.api_url}/info", auth=(stack.a.config.node_user, stack.a.config.node_password)
    ).json()
    stated["settings"].append({"name": "transfer_manager_max_concurrent_sessions", "value": "1"})
    fake = "https://node-a.example:9092"
    with respx.mock(base_url=fake) as node:
        node.get("/ping").respond(200)
        node.get("/info").respond(200, json=stated)
        conn = NodeConnection.model_validate(
            {"name": "node-a", "base_url": fake, "auth": {"kind": "node_user", **LOGIN}}
        )
        with NodeClient.connect(conn) as client:
            check = ask(client, "node-a")
    assert check.session_limit == 1
    with stack.ctx.sessions() as session:
        record_check(session, stack.a_id, check, stack.ctx.now())
        session.commit()
    assert show_node(stack.ctx, "node-a").session_limit == 1

    folders = [f"s{i}-{uuid4().hex[:6]}" for i in range(2)]
    write_tree(stack.root_a, {f"{f}/f.bin": b"s" * 1_000 for f in folders})
    jobs = [stack.new_job(f) for f in folders]
    run_tasks(stack.ctx, stack.tasks)  # not counted yet: only the stated limit holds it
    assert reason_of(stack, jobs[1]) == (
        JobState.QUEUED,
        "node-a is at its session limit (1 of 1 sessions is ours; other clients' not counted)",
    )
    settle(stack.ctx, stack.tasks, [stack.a_id])
    assert show_node(stack.ctx, "node-a").other_clients_transfers is None


def test_a_node_where_no_other_client_runs_is_asked_less_often_until_one_does(
    stack: Stack,
) -> None:
    """Counts that keep finding nobody else stretch the node's spacing to 2, then 4 intervals
    (5 s here); the first count that finds another client's transfer brings it back to one."""
    start = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    moment = start
    stack.ctx.clock = lambda: moment
    stack.new_job(f"quiet-{uuid4().hex[:6]}")  # queued (no task runs): node-a is asked

    def asked_at(seconds: float) -> bool:
        nonlocal moment
        moment = start + timedelta(seconds=seconds)
        before = stack.admin_a.counters()["requests"].get("GET /ops/transfers", 0)
        line = admission_round(stack.ctx)
        asked = stack.admin_a.counters()["requests"].get("GET /ops/transfers", 0) > before
        assert ("node-a" in line) == asked, line
        return asked

    # Asked at 0 (nobody else), 10 (again nobody: 4 intervals from here on), 30, 50.
    asked = [s for s in range(0, 55, 5) if asked_at(s)]
    assert asked == [0, 10, 30, 50]
    assert "1 quiet nodes not asked" in admission_round(stack.ctx)
    moment = start + timedelta(seconds=79)  # the count from 50 s is acted on until 80 s
    with stack.ctx.sessions() as session:
        assert NodeSessions.load(stack.ctx, session, {}).others == {stack.a_id: 0}
    moment = start + timedelta(seconds=81)
    with stack.ctx.sessions() as session:
        assert NodeSessions.load(stack.ctx, session, {}).others == {}

    foreign = stack.admin_a.foreign_transfer(peer="node-b", target_rate_kbps=500)["id"]
    try:
        assert not asked_at(65)  # seen at the next stretched count, not before
        assert asked_at(70)
        assert show_node(stack.ctx, "node-a").other_clients_transfers == 1
        assert asked_at(75)  # and then every interval again
    finally:
        with client_for(stack.a) as client:
            client.cancel_transfer(foreign)
