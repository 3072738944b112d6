"""Tasks that watch nodes: one poll per source node, fanned out by beat (each interval, or when
due with adaptive polling), the slow health check of every node, and the admission round
(other clients' transfers on our nodes, adaptive link concurrency)."""

from __future__ import annotations

from orchestrator.services.conveyor.admission import admission_round
from orchestrator.services.conveyor.polling import poll_node, send_due_polls, send_polls
from orchestrator.services.nodes.health import check_all
from orchestrator.taskqueue import TaskName
from workers import runtime
from workers.app import app
from workers.base import HousekeepingTask, OrchestratorTask


@app.task(name=TaskName.POLL_ALL.value, base=HousekeepingTask)
def poll_all_nodes() -> str:
    """Send one poll task per source node that has transfers to follow."""
    return send_polls(runtime.context())


@app.task(name=TaskName.POLL_DUE.value, base=HousekeepingTask)
def poll_due_nodes() -> str:
    """Adaptive polling: send a poll to each node whose planned time has come."""
    return send_due_polls(runtime.context())


@app.task(name=TaskName.POLL.value, base=OrchestratorTask)
def poll(node_id: int) -> str:
    """Read one source node's change feed into the database."""
    return str(poll_node(runtime.context(), node_id, owner=runtime.worker_identity()))


@app.task(name=TaskName.CHECK_NODES.value, base=HousekeepingTask)
def check_nodes() -> str:
    """Ping every enabled node and read its /info; record reachability and version."""
    return check_all(runtime.context())


@app.task(name=TaskName.ADMISSION.value, base=HousekeepingTask)
def admission() -> str:
    """Count other clients' transfers on the nodes that would run queued jobs; tune links."""
    return admission_round(runtime.context())
