"""Reconcile (the sweeper): the beat-driven safety net that re-sends work whose message was lost.

The broker only carries wake-ups (DESIGN.md rule 1). Every few seconds this looks at the
database and sends again whatever waits too long: QUEUED jobs wake the dispatcher, ADMITTED
and SUBMITTING jobs past their lease get a submit, RETRY_WAIT jobs whose back-off ended go
back to the queue, and alerts due for (another) delivery wake the alert sender.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from orchestrator.db.tables import JobRow
from orchestrator.domain.states import JobState
from orchestrator.services.alerts.delivery import alerts_due
from orchestrator.services.context import ServiceContext
from orchestrator.services.conveyor.transitions import move
from orchestrator.taskqueue import TaskName

BATCH = 500


@dataclass
class SweepSummary:
    """What one sweep re-sent."""

    requeued: int = 0
    resubmitted: int = 0
    dispatch_sent: bool = False
    alerts_sent: bool = False

    def __str__(self) -> str:
        return (
            f"{self.requeued} job(s) back in the queue after back-off, "
            f"{self.resubmitted} submit(s) re-sent, dispatch "
            + ("sent" if self.dispatch_sent else "not needed")
            + (", alert sender woken" if self.alerts_sent else "")
        )


def sweep(ctx: ServiceContext) -> SweepSummary:
    """One pass of the safety net."""
    summary = SweepSummary()
    now = ctx.now()
    with ctx.unit_of_work() as work:
        session = work.session
        due = session.scalars(
            select(JobRow.id)
            .where(JobRow.state == JobState.RETRY_WAIT, JobRow.next_attempt_at <= now)
            .limit(BATCH)
        ).all()
        for job_id in due:
            if move(
                work,
                job_id,
                JobState.RETRY_WAIT,
                JobState.QUEUED,
                "back-off over: queued for a new attempt",
                at=now,
                values={"next_attempt_at": None},
            ):
                summary.requeued += 1
        work.commit()
        stale_queued = now - timedelta(seconds=ctx.settings.queued_sweep_seconds)
        queued = session.scalar(
            select(JobRow.id)
            .where(
                JobRow.state == JobState.QUEUED,
                JobRow.state_changed_at <= stale_queued,
            )
            .limit(1)
        )
        stuck = session.scalars(
            select(JobRow.id)
            .where(
                JobRow.state.in_((JobState.ADMITTED, JobState.SUBMITTING)),
                (JobRow.next_attempt_at.is_(None)) | (JobRow.next_attempt_at <= now),
            )
            .limit(BATCH)
        ).all()
    if summary.requeued or queued is not None:
        ctx.enqueue(TaskName.DISPATCH)
        summary.dispatch_sent = True
    for job_id in stuck:
        ctx.enqueue(TaskName.SUBMIT, job_id)
        summary.resubmitted += 1
    if alerts_due(ctx):
        ctx.enqueue(TaskName.DELIVER_ALERTS)
        summary.alerts_sent = True
    return summary
