"""GET /metrics through the real app: its token, and every database figure against the database.

The Redis side (queue depth, node API requests) is in tests/api/test_metrics_redis.py; the
whole path through real worker processes in tests/workers/test_metrics_workers.py.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import func, select

from orchestrator.api.app import create_app
from orchestrator.db.tables import AttemptRow, JobRow, NodeCursorRow
from orchestrator.domain.jobs import JobSpec
from orchestrator.domain.states import JobState
from orchestrator.services.context import ServiceContext
from orchestrator.services.conveyor.jobs import create_job
from orchestrator.services.conveyor.polling import poll_node
from tests.api.conftest import Api
from tests.support.metrics import Scrape, assert_histogram_consistent, scrape
from tests.support.processes import free_port
from tests.support.sim import write_tree
from tests.support.stack import run_tasks, settle

M = "hsts_orchestrator"


def unreachable_redis(ctx: ServiceContext, **changes: object) -> ServiceContext:
    """The same services with the broker URL on a port nothing listens on."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    settings = ctx.settings.model_copy(update={"redis_url": url})
    return replace(ctx, settings=settings, **changes)  # type: ignore[arg-type]


def metrics_client(ctx: ServiceContext) -> TestClient:
    return TestClient(create_app(ctx), raise_server_exceptions=False)


def new_job(api: Api, files: dict[str, bytes]) -> str:
    folder = f"m-{uuid.uuid4().hex[:8]}"  # the simulated nodes outlive one database's run
    write_tree(api.stack.root_a, {f"{folder}/{name}": data for name, data in files.items()})
    spec = {
        "source_node": "node-a",
        "source_paths": [folder],
        "destination_node": "node-b",
        "destination_path": f"in-{folder}",
    }
    return create_job(api.stack.ctx, JobSpec.model_validate(spec)).job.id


def test_metrics_needs_a_token_and_speaks_the_text_format(api: Api) -> None:
    anonymous = api.client.get("/metrics")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    wrong = api.client.get("/metrics", headers={"Authorization": "Bearer hso_not_a_token"})
    assert wrong.status_code == 401

    answer = api.client.get("/metrics", headers=api.headers("read"))
    assert answer.status_code == 200
    assert answer.headers["content-type"] == CONTENT_TYPE_LATEST
    parsed = Scrape.parse(answer.text)
    assert parsed.types[f"{M}_jobs"] == "gauge"
    assert parsed.types[f"{M}_transferred_bytes"] == "counter"
    assert parsed.types[f"{M}_job_duration_seconds"] == "histogram"
    assert parsed.value(f"{M}_jobs", state="queued") == 0


def test_database_figures_equal_the_database(api: Api) -> None:
    stack = api.stack
    new_job(api, {"a.bin": os.urandom(40_000), "sub/b.txt": b"bee"})
    settle(stack.ctx, stack.tasks, [stack.a_id])
    stack.admin_a.settings(max_retries=0)
    stack.admin_a.fault(kind="fail_transfers", error_code=36)  # retryable: a second attempt
    retried = new_job(api, {"r.bin": os.urandom(25_000)})
    settle(stack.ctx, stack.tasks, [stack.a_id])
    stack.admin_a.fault(kind="fail_transfers", error_code=5)  # configuration: fails for good
    new_job(api, {"p.bin": b"p" * 100})
    states = settle(stack.ctx, stack.tasks, [stack.a_id])
    assert sorted(states.values()) == ["completed", "completed", "failed"], states

    with metrics_client(unreachable_redis(stack.ctx)) as client:
        result = scrape(client, api.tokens["read"])

    with stack.ctx.sessions() as session:
        query = select(JobRow.state, func.count()).group_by(JobRow.state)
        by_state = {str(state): int(n) for state, n in session.execute(query)}
        jobs = list(session.scalars(select(JobRow)))
        attempts = list(session.scalars(select(AttemptRow)))
        cursor = session.get(NodeCursorRow, stack.a_id)
    expected = {state.value: 0 for state in JobState} | by_state
    assert result.by(f"{M}_jobs", "state") == {(s,): float(n) for s, n in expected.items()}
    assert result.value(f"{M}_jobs", state="completed") == 2
    assert result.value(f"{M}_jobs", state="failed") == 1

    # Bytes and files per node pair: what every attempt moved (the failed ones moved nothing).
    pair = {"source": "node-a", "destination": "node-b"}
    moved = sum(a.bytes_transferred for a in attempts)
    assert moved == 40_000 + 3 + 25_000
    assert result.value(f"{M}_transferred_bytes_total", **pair) == moved
    assert result.value(f"{M}_transferred_files_total", **pair) == 3

    # Durations: the same count, sum and buckets as computed here from the rows.
    for state in ("completed", "failed"):
        seconds = [
            (j.finished_at - j.created_at).total_seconds()
            for j in jobs
            if j.state == state and j.finished_at
        ]
        name = f"{M}_job_duration_seconds"
        assert result.value(f"{name}_count", state=state) == len(seconds)
        assert abs((result.value(f"{name}_sum", state=state) or 0) - sum(seconds)) < 0.01
        for (le,), n in result.by(f"{name}_bucket", "le", state=state).items():
            assert n == sum(s <= float(le) for s in seconds), (le, seconds)
        assert_histogram_consistent(result, name, state=state)
    transfers = result.by(f"{M}_transfer_duration_seconds_count", "status", **pair)
    assert transfers == {("completed",): 2, ("failed",): 2}

    assert result.by(f"{M}_retries_total", "error_class") == {
        ("retryable",): 1,
        ("configuration",): 0,
        ("permanent",): 0,
        ("unexplained",): 0,
        ("submission",): 0,
        ("lost",): 0,
    }
    assert [a.error_code for a in attempts if a.job_id == retried and a.number == 1] == [36]

    assert result.value(f"{M}_node_poll_lag_seconds", node="node-a") == 0
    assert result.value(f"{M}_node_open_transfers", node="node-a") == 0
    assert result.value(f"{M}_node_poll_failing", node="node-a") == 0
    assert cursor is not None and cursor.last_success_at is not None
    last_ok = result.value(f"{M}_node_last_poll_success_timestamp_seconds", node="node-a")
    assert last_ok == pytest.approx(cursor.last_success_at.timestamp(), abs=1e-3)

    # The broker cannot be read: its families are left out and the scrape says so.
    assert result.value(f"{M}_metrics_source_up", source="database") == 1
    assert result.value(f"{M}_metrics_source_up", source="redis") == 0
    assert not result.series(f"{M}_queue_messages")


def test_poll_lag_counts_from_the_last_read_of_the_feed(api: Api) -> None:
    stack = api.stack
    job_id = new_job(api, {"slow.bin": os.urandom(5_000)})
    run_tasks(stack.ctx, stack.tasks)  # dispatch and submit: the transfer is on node-a

    with stack.ctx.sessions() as session:
        (attempt,) = session.scalars(select(AttemptRow).where(AttemptRow.job_id == job_id))
    later = attempt.created_at + timedelta(seconds=100)

    def lag_at(at: datetime) -> Scrape:
        clock: Callable[[], datetime] = lambda: at  # noqa: E731
        with metrics_client(unreachable_redis(stack.ctx, clock=clock)) as client:
            return scrape(client, api.tokens["read"])

    # Never polled since the transfer was posted: the lag runs from the attempt.
    before = lag_at(later)
    assert before.value(f"{M}_node_open_transfers", node="node-a") == 1
    assert before.value(f"{M}_node_poll_lag_seconds", node="node-a") == pytest.approx(
        100.0, abs=1e-3
    )
    assert before.value(f"{M}_node_poll_lag_seconds", node="node-b") == 0

    poll_node(stack.ctx, stack.a_id, owner="test")
    with stack.ctx.sessions() as session:
        cursor = session.get(NodeCursorRow, stack.a_id)
        assert cursor is not None and cursor.last_success_at is not None
        polled = cursor.last_success_at
    after = lag_at(polled + timedelta(seconds=7))
    if after.value(f"{M}_node_open_transfers", node="node-a") == 1:
        assert after.value(f"{M}_node_poll_lag_seconds", node="node-a") == pytest.approx(
            7.0, abs=1e-3
        )
    else:  # the poll saw it complete already: nothing to follow, no lag
        assert after.value(f"{M}_node_poll_lag_seconds", node="node-a") == 0
    settle(stack.ctx, stack.tasks, [stack.a_id])
