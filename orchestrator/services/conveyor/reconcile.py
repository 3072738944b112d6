"""Reconcile (the sweeper): the beat-driven safety net that re-sends work whose message was lost.

The broker only carries wake-ups (DESIGN.md rule 1). Every few seconds this looks at the
database and sends again whatever waits too long: QUEUED jobs wake the dispatcher, ADMITTED
and SUBMITTING jobs past their lease get a submit, RETRY_WAIT jobs whose back-off ended go
back to the queue, and alerts due for (another) delivery wake the alert sender. It also
watches every source node's poll lag against the time the node keeps transfer records.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orchestrator.db.tables import DISPATCH_LOCK, JobRow, NodeCursorRow, ServiceLockRow
from orchestrator.domain.nodes import at_risk
from orchestrator.domain.states import JobState
from orchestrator.services.alerts.delivery import alerts_due
from orchestrator.services.alerts.outbox import on_node_lagging
from orchestrator.services.context import ServiceContext
from orchestrator.services.conveyor.checksums import held_for_files
from orchestrator.services.conveyor.transitions import move
from orchestrator.services.nodes.freshness import poll_status
from orchestrator.taskqueue import TaskName

log = logging.getLogger(__name__)

BATCH = 500


@dataclass
class SweepSummary:
    """What one sweep re-sent."""

    requeued: int = 0
    resubmitted: int = 0
    dispatch_sent: bool = False
    alerts_sent: bool = False
    files_read_again: int = 0  # completed jobs whose files and checksums are read again
    at_risk: list[str] = field(default_factory=list)  # nodes whose records may expire unread

    def __str__(self) -> str:
        return (
            f"{self.requeued} job(s) back in the queue after back-off, "
            f"{self.resubmitted} submit(s) re-sent, dispatch "
            + ("sent" if self.dispatch_sent else "not needed")
            + (", alert sender woken" if self.alerts_sent else "")
            + (
                f", {self.files_read_again} job(s)' files read again"
                if self.files_read_again
                else ""
            )
            + (f"; records at risk on {', '.join(self.at_risk)}" if self.at_risk else "")
        )


def _dispatched_since(session: Session, since: datetime) -> bool:
    """Whether a dispatch run committed after ``since`` (each run stamps its lock row)."""
    taken_at = session.scalar(
        select(ServiceLockRow.taken_at).where(ServiceLockRow.name == DISPATCH_LOCK)
    )
    return taken_at is not None and taken_at > since


def _last_gathered(session: Session, now: datetime, since: datetime) -> datetime:
    """``since``, or when a node's gathering of freed slots ended after it (a dispatch that
    held jobs for it sent itself again for that moment; the message may have been lost)."""
    ended = session.scalar(
        select(func.max(NodeCursorRow.gather_until)).where(NodeCursorRow.gather_until <= now)
    )
    return max(since, ended) if ended is not None else since


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
        if queued is not None and _dispatched_since(
            session, _last_gathered(session, now, stale_queued)
        ):
            # A dispatch ran after these jobs were queued, and after the last gathering of
            # freed slots ended: it saw them, no message was lost. (Sent every sweep, a deep
            # queue's re-sends split the slots that free together into many small submit
            # batches, each with its own upload_setup and /files/info.)
            queued = None
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
    held = held_for_files(ctx, older_than=timedelta(seconds=ctx.settings.queued_sweep_seconds))
    for job_id in held:
        ctx.enqueue(TaskName.COLLECT_FILES, job_id)
    summary.files_read_again = len(held)
    summary.at_risk = _watch_retention(ctx)
    if alerts_due(ctx):
        ctx.enqueue(TaskName.DELIVER_ALERTS)
        summary.alerts_sent = True
    return summary


def _watch_retention(ctx: ServiceContext) -> list[str]:
    """Nodes whose poll lag nears their record retention: logged, and alerted once per lapse."""
    now = ctx.now()
    risky = []
    with ctx.unit_of_work() as work:
        for poll in poll_status(work.session, now):
            if poll.open_transfers and at_risk(poll.lag_seconds, poll.activity_retention_seconds):
                risky.append(poll.name)
                log.warning(
                    "node %s: no good poll for %.0f s; it keeps records for %d s",
                    poll.name,
                    poll.lag_seconds,
                    poll.activity_retention_seconds,
                    extra={"node": poll.name},
                )
                on_node_lagging(work, poll, now)
        work.commit()
    return risky
