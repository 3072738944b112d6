"""The maintenance tick: pause transfers on nodes whose window began, resume them after it."""

from __future__ import annotations

from orchestrator.services.conveyor.maintenance import maintenance_tick
from orchestrator.taskqueue import TaskName
from workers import runtime
from workers.app import app
from workers.base import HousekeepingTask


@app.task(name=TaskName.MAINTENANCE_TICK.value, base=HousekeepingTask)
def tick_maintenance() -> str:
    """One pass over the nodes' maintenance windows."""
    return str(maintenance_tick(runtime.context()))
