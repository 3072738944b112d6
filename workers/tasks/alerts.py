"""The alert sender: delivers queued webhook and mail alerts (woken after commit and by sweeps)."""

from __future__ import annotations

from orchestrator.services.alerts.delivery import deliver_due
from orchestrator.taskqueue import TaskName
from workers import runtime
from workers.app import app
from workers.base import OrchestratorTask


@app.task(name=TaskName.DELIVER_ALERTS.value, base=OrchestratorTask)
def deliver_alerts() -> str:
    """Send every alert that is due; failures wait in the database for their next try."""
    return str(deliver_due(runtime.context()))
