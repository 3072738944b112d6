"""The maintenance tick: when a node's window opens, pause the transfers on it (source or
destination) through the source node; when it closes, resume them, or start a new attempt
when the node cannot resume one. Queued jobs are held by the dispatcher.

A hold row is written before the pause is sent, so a crash between the two leaves a hold whose
resume is harmless (a running transfer ignores it), never a paused transfer nobody resumes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from orchestrator.db.tables import AttemptRow, JobRow, MaintenanceHoldRow
from orchestrator.domain.maintenance import Calendar, Occurrence, clock, in_maintenance_text
from orchestrator.domain.states import AttemptState, JobState
from orchestrator.errors import NodeError, NodeNotFound
from orchestrator.services.context import ServiceContext
from orchestrator.services.conveyor.pacing import poll_soon
from orchestrator.services.conveyor.transitions import move
from orchestrator.services.events import record
from orchestrator.services.nodes.maintenance import calendar
from orchestrator.settings import Settings
from orchestrator.taskqueue import TaskName

log = logging.getLogger(__name__)

PAUSABLE = (JobState.SUBMITTED, JobState.RUNNING)
# After a window ends, the ticks of this many poll intervals wake the dispatcher (one would do,
# but a tick may run late or its message be lost); the sweeper does it anyway, later.
RELEASE_TICKS = 3
EVENT = "maintenance"


@dataclass
class TickSummary:
    """What one maintenance tick did."""

    paused: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)  # resumed as a new attempt
    nodes_in_maintenance: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        nodes = ", ".join(self.nodes_in_maintenance) or "none"
        return (
            f"in maintenance: {nodes}; paused {len(self.paused)}, resumed {len(self.resumed)}, "
            f"restarted {len(self.restarted)}"
        )


def tick_seconds(settings: Settings) -> float:
    """How often beat runs the maintenance tick: twice per poll interval."""
    return settings.poll_interval / 2


def maintenance_tick(ctx: ServiceContext) -> TickSummary:
    """Pause what runs on a node in maintenance, resume what a finished window paused."""
    now = ctx.now()
    with ctx.sessions() as session:
        plan = calendar(session, now)
        # Ticks come every half poll interval: pausing what a window will hold by the next one
        # means no byte moves in the window, at the cost of pausing up to one tick early.
        ahead = calendar(session, now + timedelta(seconds=tick_seconds(ctx.settings)))
    summary = TickSummary(nodes_in_maintenance=sorted({o.node for o in plan.current.values()}))
    if ahead.current:
        _pause_running(ctx, ahead, now, summary)
    _resume_released(ctx, (plan, ahead), now, summary)
    ended_lately = plan.last_end is not None and (now - plan.last_end) <= timedelta(
        seconds=RELEASE_TICKS * ctx.settings.poll_interval
    )
    if summary.resumed or summary.restarted or ended_lately:
        ctx.enqueue(TaskName.DISPATCH)  # the jobs it held may go now
    return summary


def _pause_running(
    ctx: ServiceContext, plan: Calendar, now: datetime, summary: TickSummary
) -> None:
    nodes = list(plan.current)
    held = select(MaintenanceHoldRow.job_id)
    with ctx.sessions() as session:
        rows = session.execute(
            select(
                JobRow.id,
                JobRow.source_node_id,
                JobRow.destination_node_id,
                AttemptRow.source_node_id,  # the node that runs the transfer (modes.py)
                AttemptRow.remote_id,
            )
            .join(
                AttemptRow,
                (AttemptRow.job_id == JobRow.id) & (AttemptRow.number == JobRow.attempt_count),
            )
            .where(
                JobRow.state.in_(PAUSABLE),
                JobRow.source_node_id.in_(nodes) | JobRow.destination_node_id.in_(nodes),
                JobRow.id.not_in(held),
                AttemptRow.remote_id.is_not(None),
                # Ended, its job waits for its files (checksums): nothing on the node to pause,
                # and a resume the node refused after the window would start it again.
                AttemptRow.ended_at.is_(None),
            )
        ).all()
    runners: set[int] = set()
    for job_id, source_id, destination_id, runner_id, remote_id in rows:
        occurrence = plan.blocking(source_id, destination_id)
        assert occurrence is not None
        if remote_id and _pause_one(ctx, job_id, runner_id, remote_id, occurrence, now):
            summary.paused.append(job_id)
            runners.add(runner_id)
    for runner_id in runners:
        poll_soon(ctx, runner_id)  # the feed shows them paused


def _pause_one(
    ctx: ServiceContext,
    job_id: str,
    runner_id: int,
    remote_id: str,
    occurrence: Occurrence,
    now: datetime,
) -> bool:
    with ctx.sessions() as session:
        job = session.get(JobRow, job_id)
        if job is None or job.state not in PAUSABLE:
            return False
        session.add(
            MaintenanceHoldRow(
                job_id=job_id,
                node_id=runner_id,
                attempt_number=job.attempt_count,
                remote_id=remote_id,
                until=occurrence.end,
                paused_at=now,
            )
        )
        try:
            session.commit()
        except IntegrityError:
            return False  # another tick (one sent when a window was added) holds it already
    try:
        ctx.clients.get(runner_id).pause_transfer(remote_id)
    except NodeError as exc:
        # The node cannot pause it now (gone, unreachable): the poller follows the transfer as
        # usual, and the next tick tries again.
        log.warning("maintenance: could not pause job %s: %s", job_id, exc)
        with ctx.sessions() as session:
            session.execute(delete(MaintenanceHoldRow).where(MaintenanceHoldRow.job_id == job_id))
            session.commit()
        return False
    with ctx.sessions() as session:
        record(session, job_id, EVENT, "paused: " + in_maintenance_text(occurrence, now), at=now)
        session.commit()
    return True


def _resume_released(
    ctx: ServiceContext, plans: tuple[Calendar, ...], now: datetime, summary: TickSummary
) -> None:
    with ctx.sessions() as session:
        holds = session.execute(
            select(MaintenanceHoldRow, JobRow.source_node_id, JobRow.destination_node_id).join(
                JobRow, JobRow.id == MaintenanceHoldRow.job_id
            )
        ).all()
    runners: set[int] = set()
    for hold, source_id, destination_id in holds:
        if any(plan.blocking(source_id, destination_id) for plan in plans):
            continue  # still (or again, or by the next tick) in maintenance
        outcome = _resume_one(ctx, hold, now)
        if outcome == "resumed":
            summary.resumed.append(hold.job_id)
        elif outcome == "restarted":
            summary.restarted.append(hold.job_id)
        if outcome:
            runners.add(hold.node_id)  # the node that runs the transfer
    for runner_id in runners:
        poll_soon(ctx, runner_id)


def _resume_one(ctx: ServiceContext, hold: MaintenanceHoldRow, now: datetime) -> str:
    """'resumed', 'restarted' (a new attempt), 'dropped' (nothing to resume), or '' (retry)."""
    with ctx.sessions() as session:
        job = session.get(JobRow, hold.job_id)
        current = job is not None and job.attempt_count == hold.attempt_number
        on_node = current and job is not None and job.state in (*PAUSABLE, JobState.PAUSED)
    if not on_node:
        _drop(ctx, hold.job_id)  # it ended, or moved on to another attempt meanwhile
        return "dropped"
    ended = f"maintenance over (planned until {clock(hold.until, now)})"
    try:
        ctx.clients.get(hold.node_id).resume_transfer(hold.remote_id)
    except NodeError as exc:
        if exc.retryable and not isinstance(exc, NodeNotFound):
            log.warning("maintenance: could not resume job %s yet: %s", hold.job_id, exc)
            return ""  # the node does not answer: try again at the next tick
        if not isinstance(exc, NodeNotFound):
            _cancel_quietly(ctx, hold)  # never two transfers writing one destination
        why = f"{ended}; the node could not resume the transfer ({exc})"
        return "restarted" if _restart(ctx, hold, now, why) else "dropped"
    with ctx.sessions() as session:
        record(session, hold.job_id, EVENT, f"resumed: {ended}", at=now)
        session.execute(delete(MaintenanceHoldRow).where(MaintenanceHoldRow.job_id == hold.job_id))
        session.commit()
    return "resumed"


def _restart(ctx: ServiceContext, hold: MaintenanceHoldRow, now: datetime, why: str) -> bool:
    """End the attempt the node could not resume and queue the job for a new one (a fresh
    token); the window does not use up the job's attempts."""
    with ctx.unit_of_work() as work:
        session = work.session
        job = session.get(JobRow, hold.job_id)
        assert job is not None
        moved = move(
            work,
            hold.job_id,
            {JobState.SUBMITTED, JobState.RUNNING, JobState.PAUSED},
            JobState.RETRY_WAIT,
            f"{why}: a new attempt with a fresh token",
            at=now,
            values={"max_attempts": job.max_attempts + 1},
        )
        if moved is not None:
            session.execute(
                update(AttemptRow)
                .where(
                    AttemptRow.job_id == hold.job_id,
                    AttemptRow.number == hold.attempt_number,
                    AttemptRow.ended_at.is_(None),
                )
                .values(status=AttemptState.LOST, ended_at=now)
            )
            move(work, hold.job_id, JobState.RETRY_WAIT, JobState.QUEUED, "queued", at=now)
        session.execute(delete(MaintenanceHoldRow).where(MaintenanceHoldRow.job_id == hold.job_id))
        work.commit()
    return moved is not None


def _cancel_quietly(ctx: ServiceContext, hold: MaintenanceHoldRow) -> None:
    try:
        ctx.clients.get(hold.node_id).cancel_transfer(hold.remote_id)
    except NodeError as exc:
        log.warning("maintenance: could not cancel job %s's old transfer: %s", hold.job_id, exc)


def _drop(ctx: ServiceContext, job_id: str) -> None:
    with ctx.sessions() as session:
        session.execute(delete(MaintenanceHoldRow).where(MaintenanceHoldRow.job_id == job_id))
        session.commit()
