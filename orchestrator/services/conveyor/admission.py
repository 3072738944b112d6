"""The admission round beat runs: count other clients' work on our nodes, tune each link's
concurrency, and wake dispatch when either changed what it may admit."""

from __future__ import annotations

from orchestrator.services.context import ServiceContext
from orchestrator.services.conveyor.concurrency import tune_links
from orchestrator.services.conveyor.nodeload import count_node_load
from orchestrator.taskqueue import TaskName


def admission_round(ctx: ServiceContext) -> str:
    """One round; returns a line for Flower."""
    load = count_node_load(ctx)
    tuned = tune_links(ctx)
    if load.changed or tuned.changed:
        ctx.enqueue(TaskName.DISPATCH)
    parts = [str(load)]
    if ctx.settings.adaptive_concurrency:
        parts.append(str(tuned))
    return "; ".join(parts)
