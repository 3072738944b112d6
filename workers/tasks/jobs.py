"""Tasks that move jobs: dispatch, submit, file checksums, and the sweeper."""

from __future__ import annotations

from typing import Any

from orchestrator.logsetup import redact
from orchestrator.services.conveyor.checksums import collect_files
from orchestrator.services.conveyor.dispatch import dispatch
from orchestrator.services.conveyor.intake import submit_message, submit_messages
from orchestrator.services.conveyor.reconcile import sweep
from orchestrator.services.conveyor.retention import prune_history
from orchestrator.services.conveyor.submission import submit
from orchestrator.services.views.jobs import failure_summary
from orchestrator.taskqueue import TaskName
from workers import runtime
from workers.app import app
from workers.base import HousekeepingTask, OrchestratorTask


@app.task(name=TaskName.CREATE_JOB.value, base=OrchestratorTask)
def create_job_from_message(body: dict[str, Any], idempotency_key: str | None = None) -> str:
    """Create a job from the same JSON body as POST /api/v1/jobs (validated the same way)."""
    return submit_message(runtime.context(), body, idempotency_key)


@app.task(name=TaskName.CREATE_JOBS.value, base=OrchestratorTask)
def create_jobs_from_message(bodies: list[dict[str, Any]]) -> str:
    """Create up to 100 jobs in one transaction, each body as POST /api/v1/jobs takes it with
    its own ``idempotency_key``; one line per body says what became of it."""
    return submit_messages(runtime.context(), bodies)


@app.task(name=TaskName.DISPATCH.value, base=OrchestratorTask)
def dispatch_jobs() -> str:
    """Admit queued jobs within the limits."""
    return str(dispatch(runtime.context(), holder=runtime.worker_identity()))


@app.task(name=TaskName.SUBMIT.value, base=OrchestratorTask)
def submit_jobs(*job_ids: str) -> str:
    """Submit jobs' transfers (at most one node transfer per attempt)."""
    return str(submit(runtime.context(), *job_ids))


@app.task(name=TaskName.COLLECT_FILES.value, base=OrchestratorTask)
def collect_job_files(job_id: str) -> str:
    """Store a completed transfer's files and checksums, then end its job."""
    return collect_files(runtime.context(), job_id)


@app.task(name=TaskName.SWEEP.value, base=HousekeepingTask)
def sweep_jobs() -> str:
    """Re-send work whose message was lost; requeue jobs whose back-off ended."""
    return str(sweep(runtime.context()))


@app.task(name=TaskName.PRUNE_HISTORY.value, base=HousekeepingTask)
def prune_old_jobs() -> str:
    """Archive and delete jobs that ended before ORCH_HISTORY_DAYS."""
    return str(prune_history(runtime.context()))


class JobFailedOnNode(Exception):
    """Raised on purpose: a job ended failed or needing attention (Flower lists it failed)."""


@app.task(name=TaskName.JOB_FAILED.value, base=OrchestratorTask, throws=(JobFailedOnNode,))
def job_failed(job_id: str) -> str:
    """Fail with the job's reason, the node's code and text: one failed task per failed job."""
    raise JobFailedOnNode(redact(failure_summary(runtime.context(), job_id)))
