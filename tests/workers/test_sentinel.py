"""Redis Sentinel as the broker: the master is killed -9 while jobs run and the Sentinel
promotes its replica. Workers, beat and its leader lock, this process's publisher, the node API
counters, /metrics and /readyz all follow the new master, and every job completes with one
node transfer."""

from __future__ import annotations

import pytest
import redis
from sqlalchemy import update

from orchestrator.db.tables import NodeRow
from orchestrator.domain.states import JobState
from orchestrator.services.views.health import readiness
from orchestrator.services.views.metrics.collector import scrape
from tests.support.metrics import Scrape
from tests.support.processes import CeleryProcess
from tests.workers.conftest import Rig
from workers.leader import LEADER_KEY

M = "hsts_orchestrator"
SIZES = [60_000, 3_000, 0]  # 63 kB per job
SLOW = {"target_rate_kbps": 320}  # ~1.5 s per job: transfers run across the failover
OPEN = (JobState.SUBMITTED, JobState.RUNNING)


def node_calls_counted(rig: Rig) -> float | None:
    """Node API requests in a /metrics scrape (read from the master the Sentinel names), or
    None while that scrape cannot read Redis."""
    result = Scrape.parse(scrape(rig.ctx).decode())
    if result.value(f"{M}_metrics_source_up", source="redis") != 1:
        return None
    return sum(result.by(f"{M}_node_api_requests_total", "node").values())


# SQLite only: the broker is what this tests, and the CI's time is short.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.rig(sentinel=True, settings={"metrics_flush_seconds": 0.5})
def test_jobs_complete_once_across_a_sentinel_failover(rig: Rig) -> None:
    replica, sentinel = rig.replica, rig.sentinel
    assert replica is not None and sentinel is not None
    with rig.ctx.sessions() as session:  # two at a time, so that some jobs wait in the queue
        session.execute(update(NodeRow).where(NodeRow.id == rig.a_id).values(max_outbound=2))
        session.commit()
    rig.worker()
    ids = rig.jobs([f"sf{i}" for i in range(4)], sizes=SIZES, options=SLOW)
    rig.wait(
        lambda: rig.count_in(*OPEN) >= 1 and rig.count_in(JobState.QUEUED) >= 1,
        "jobs running and jobs queued",
    )
    rig.wait(lambda: sentinel.replica_ready(replica.port), "the Sentinel sees the replica linked")
    rig.wait(lambda: node_calls_counted(rig), "node API calls counted on the first master")

    rig.redis.kill_group()  # the master, kill -9: whatever it had not replicated is lost
    # A worker may exit on the broker loss (kombu 5.7, see test_worker_faults), even before the
    # Sentinel has promoted the replica: the rig restarts it as a supervisor would.
    rig.wait(
        lambda: sentinel.master_port() == replica.port,
        "the Sentinel promoted the replica",
        supervise=True,
    )
    (before,) = rig.wait(
        lambda: (n,) if (n := node_calls_counted(rig)) is not None else None,
        "/metrics reads the new master",
        supervise=True,
    )
    # A job accepted after the failover: its wake-up is published to the new master.
    rig.tree("sf-after", SIZES)
    ids.append(rig.new_job("sf-after"))

    rig.assert_converged(ids, supervise=True)

    # The counters flushed after the failover reached the new master, and /metrics reads them.
    rig.wait(
        lambda: (node_calls_counted(rig) or 0) > before,
        "node API calls counted on the new master",
    )
    assert readiness(rig.ctx)["broker"] == "ok"
    promoted = redis.Redis(port=replica.port, password=replica.password, socket_timeout=2)
    try:
        assert promoted.get(LEADER_KEY), "beat holds its leader lock on the new master"
    finally:
        promoted.close()
    assert sentinel.master_port() == replica.port, "no failover back and forth"
    logs = "".join(p.log_text() for p in rig.processes.started if isinstance(p, CeleryProcess))
    for secret in (replica.password, sentinel.password):
        assert secret not in logs, "a Redis password in a worker's or beat's log"
