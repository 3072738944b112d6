"""The replication tick: due schedule slots become jobs."""

from __future__ import annotations

from orchestrator.services.schedules.runs import tick
from orchestrator.taskqueue import TaskName
from workers import runtime
from workers.app import app
from workers.base import HousekeepingTask


@app.task(name=TaskName.REPLICATION_TICK.value, base=HousekeepingTask)
def replication_tick() -> str:
    """Start the runs of schedules whose slot has come (each slot once)."""
    return str(tick(runtime.context()))
