"""Tasks that follow transfers: one poll per source node, fanned out by beat."""

from __future__ import annotations

from orchestrator.services.conveyor.polling import poll_node, source_nodes_to_poll
from orchestrator.taskqueue import PERIODIC_EXPIRY_INTERVALS, TaskName
from workers import runtime
from workers.app import app
from workers.base import OrchestratorTask


@app.task(name=TaskName.POLL_ALL.value, base=OrchestratorTask)
def poll_all_nodes() -> str:
    """Send one poll task per source node that has transfers to follow."""
    ctx = runtime.context()
    node_ids = source_nodes_to_poll(ctx)
    interval = ctx.settings.poll_interval
    for node_id in node_ids:
        ctx.enqueue(TaskName.POLL, node_id, expires=interval * PERIODIC_EXPIRY_INTERVALS)
    return f"{len(node_ids)} node poll(s) sent"


@app.task(name=TaskName.POLL.value, base=OrchestratorTask)
def poll(node_id: int) -> str:
    """Read one source node's change feed into the database."""
    return str(poll_node(runtime.context(), node_id, owner=runtime.worker_identity()))
