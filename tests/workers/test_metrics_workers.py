"""/metrics over a real stack: worker and beat processes, redis-server, hstssim nodes, the API.

The workers count every node call in their own processes and flush to Redis; the API reads
the database and Redis. Each figure is checked against what the database and the simulated
nodes themselves say.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from orchestrator.api.app import create_app
from orchestrator.db.tables import AttemptRow, JobRow
from orchestrator.domain.states import JobState
from orchestrator.services.tokens import Scope, create_token
from tests.support.metrics import Scrape, assert_histogram_consistent, scrape
from tests.workers.conftest import Admin, Rig

M = "hsts_orchestrator"
SIZES = [30_000, 5, 0]


@pytest.fixture
def api(rig: Rig) -> Iterator[tuple[TestClient, str]]:
    with rig.ctx.sessions() as session:
        token = create_token(session, "prometheus", [Scope.READ]).secret
        session.commit()
    with TestClient(create_app(rig.ctx), raise_server_exceptions=False) as client:
        yield client, token


def node_requests(result: Scrape, node: str) -> dict[str, int]:
    """The scrape's request counts of one node in hstssim's "METHOD /template" form."""
    counts = result.by(f"{M}_node_api_requests_total", "method", "endpoint", node=node)
    return {f"{method} {endpoint}": int(n) for (method, endpoint), n in counts.items()}


def nodes_agree(client: TestClient, token: str, *admins: tuple[str, Admin]) -> Scrape | None:
    """A scrape whose request counts equal each node's own counters, or None (not flushed yet)."""
    result = scrape(client, token)
    for name, admin in admins:
        if node_requests(result, name) != admin.counters()["requests"]:
            return None
    return result


def test_a_real_stack_scrape_agrees_with_the_database_and_the_nodes(
    rig: Rig, api: tuple[TestClient, str]
) -> None:
    client, token = api
    # The first token request fails (a retry through submission) and the first read of the
    # source's feed is refused (a poll error); both must show up.
    rig.admin_b.fault(kind="http_error", endpoint="POST /files/upload_setup", status=500)
    rig.admin_a.fault(kind="http_error", endpoint="GET /ops/transfers", status=401)
    ids = rig.jobs(["m1", "m2", "m3"], sizes=SIZES)
    assert scrape(client, token).value(f"{M}_jobs", state="queued") == len(ids)
    rig.worker()

    rig.assert_converged(ids, attempts_per_job=None)
    assert rig.admin_a.faults() == [] and rig.admin_b.faults() == [], "both faults fired"
    with rig.ctx.sessions() as session:
        query = select(JobRow.state, func.count()).group_by(JobRow.state)
        by_state = {str(state): int(n) for state, n in session.execute(query)}
        attempts = list(session.scalars(select(AttemptRow)))
    expected = {state.value: 0 for state in JobState} | by_state
    counts = {(s,): float(n) for s, n in expected.items()}

    def agreeing() -> Scrape | None:
        # Workers flush every ORCH_METRICS_FLUSH_SECONDS, and sums over ended jobs may be
        # served from a reading a few seconds old when reading them is slow (a busy machine).
        result = nodes_agree(client, token, ("node-a", rig.admin_a), ("node-b", rig.admin_b))
        return result if result is not None and result.by(f"{M}_jobs", "state") == counts else None

    result = rig.wait(agreeing, "/metrics agrees with the nodes' counters and the database", 60)
    assert result.by(f"{M}_jobs", "state") == counts
    assert by_state == {"completed": len(ids)}

    pair = {"source": "node-a", "destination": "node-b"}
    assert result.value(f"{M}_transferred_bytes_total", **pair) == len(ids) * sum(SIZES)
    assert result.value(f"{M}_transferred_files_total", **pair) == len(ids) * len(SIZES)
    assert result.value(f"{M}_job_duration_seconds_count", state="completed") == len(ids)
    assert_histogram_consistent(result, f"{M}_job_duration_seconds", state="completed")
    done = {**pair, "status": "completed"}
    assert result.value(f"{M}_transfer_duration_seconds_count", **done) == len(ids)

    # Errors, per node and endpoint, with the status the node answered.
    assert result.by(f"{M}_node_api_errors_total", "node", "method", "endpoint", "kind") == {
        ("node-b", "POST", "/files/upload_setup", "server_error"): 1,
        ("node-a", "GET", "/ops/transfers", "auth_error"): 1,
    }
    setup = {"node": "node-b", "method": "POST", "endpoint": "/files/upload_setup"}
    assert result.value(f"{M}_node_api_requests_total", **setup, code="500") == 1
    feed = {"node": "node-a", "method": "GET", "endpoint": "/ops/transfers"}
    assert result.value(f"{M}_node_api_requests_total", **feed, code="401") == 1
    latency = f"{M}_node_api_request_duration_seconds"
    for name, admin in (("node-a", rig.admin_a), ("node-b", rig.admin_b)):
        for key, n in admin.counters()["requests"].items():
            method, endpoint = key.split(" ", 1)
            where = {"node": name, "method": method, "endpoint": endpoint}
            assert result.value(f"{latency}_count", **where) == n
            assert_histogram_consistent(result, latency, **where)

    # Every job whose batch met the failed upload_setup was retried once, class "submission".
    numbers = {(a.job_id, a.number) for a in attempts}
    retried = [a for a in attempts if (a.job_id, a.number + 1) in numbers]
    assert retried and all(a.status == "abandoned" for a in retried)
    assert result.value(f"{M}_retries_total", error_class="submission") == len(retried)
    assert result.value(f"{M}_retries_total", error_class="retryable") == 0

    assert result.value(f"{M}_node_poll_lag_seconds", node="node-a") == 0
    assert result.value(f"{M}_node_open_transfers", node="node-a") == 0
    assert result.value(f"{M}_node_last_poll_success_timestamp_seconds", node="node-a")
    assert result.value(f"{M}_metrics_source_up", source="redis") == 1
    assert result.value(f"{M}_metrics_source_up", source="database") == 1
    assert {q for (q,) in result.by(f"{M}_queue_messages", "queue")} == {
        "default",
        "submit",
        "poll",
    }
