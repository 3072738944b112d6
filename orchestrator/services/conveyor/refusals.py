"""A node that refuses our credentials (HTTP 401/403) is disabled, and alerted on, once.

Its job's attempt never reached the node: the job goes back to the queue, where dispatch
keeps it waiting ("node … is disabled") until a person fixes the credentials and enables
the node. Only the first job to see the refusal flips the node; the others just wait.
"""

from __future__ import annotations

import logging

from sqlalchemy import select, update

from orchestrator.db.engine import rowcount
from orchestrator.db.tables import AttemptRow, JobRow, NodeRow
from orchestrator.domain.remediation import Remedy, remedy_for_status
from orchestrator.domain.states import AttemptState, JobState
from orchestrator.errors import NodeError
from orchestrator.services.alerts.outbox import on_operator_event
from orchestrator.services.context import ServiceContext
from orchestrator.services.conveyor.transitions import move
from orchestrator.services.events import record

log = logging.getLogger(__name__)

NODE_DISABLED = "node_disabled"


def disable_refusing_node(
    ctx: ServiceContext, job: JobRow, attempt: AttemptRow, exc: NodeError
) -> str | None:
    """Disable the node that refused us and queue the job again; None when not a refusal."""
    if remedy_for_status(exc.status) is not Remedy.DISABLE_NODE:
        return None
    now = ctx.now()
    advice = (
        f"fix its credentials (hsts-orchestrator nodes update {exc.node}), then "
        f"hsts-orchestrator nodes enable {exc.node}"
    )
    reason = (
        f"node {exc.node} refused our credentials (HTTP {exc.status} on {exc.operation}); "
        f"it is disabled: {advice}"
    )
    with ctx.unit_of_work() as work:
        session = work.session
        abandoned = session.execute(
            update(AttemptRow)
            .where(AttemptRow.id == attempt.id, AttemptRow.remote_id.is_(None))
            .values(status=AttemptState.ABANDONED, ended_at=now, error_text=str(exc))
        )
        if rowcount(abandoned) != 1:
            work.rollback()
            return None
        node_id = session.scalar(select(NodeRow.id).where(NodeRow.name == exc.node))
        flipped = rowcount(
            session.execute(
                update(NodeRow)
                .where(NodeRow.name == exc.node, NodeRow.enabled.is_(True))
                .values(enabled=False, updated_at=now)
            )
        )
        moved = move(
            work,
            job.id,
            JobState.SUBMITTING,
            JobState.RETRY_WAIT,
            f"not posted: {reason}",
            at=now,
            values={
                "next_attempt_at": now,
                "submit_failures": job.submit_failures + 1,
                "reason": reason,
            },
        )
        if moved is None:
            work.rollback()
            return None
        if flipped:
            record(session, job.id, "remedy", f"disabled node {exc.node}", at=now)
            log.error("%s", reason, extra={"node": exc.node})
            on_operator_event(
                work,
                NODE_DISABLED,
                "node.disabled",
                reason,
                {"node": {"name": exc.node, "status": exc.status, "operation": exc.operation}},
                episode=f"{node_id}:{now.isoformat()}",
                at=now,
            )
        work.commit()
    return f"job {job.id}: {reason}"
