"""Schedules as readers see them: last and next run, streaks, health and recent runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orchestrator.db.tables import AttemptRow, JobRow, ScheduleRow
from orchestrator.domain.schedules import ScheduleSpec, next_slot
from orchestrator.domain.states import FAILED_ENDS, SETTLED, JobState
from orchestrator.services.context import ServiceContext
from orchestrator.services.nodes.registry import node_names
from orchestrator.services.schedules.runs import timing_of
from orchestrator.services.schedules.store import get_schedule, spec_of


@dataclass(frozen=True)
class RunView:
    """One run of a schedule."""

    job_id: str
    state: str
    trigger: str
    slot_time: datetime | None
    created_at: datetime
    finished_at: datetime | None
    bytes_transferred: int
    files_completed: int
    files_skipped: int
    error_text: str | None


@dataclass(frozen=True)
class ScheduleView:
    """A schedule with its last and next runs, streaks and recent history."""

    spec: ScheduleSpec
    managed_by: str
    created_at: datetime
    next_run_at: datetime | None
    last_run: RunView | None
    active_run_id: str | None
    success_streak: int
    failure_streak: int
    health: str  # ok | failing | stalled | disabled | never run
    skipped_slots: int
    last_skipped_slot: datetime | None
    last_error: str | None
    runs: list[RunView]

    @property
    def id(self) -> str:
        """The schedule's id."""
        return self.spec.id

    @property
    def enabled(self) -> bool:
        """Whether the schedule fires."""
        return self.spec.enabled

    @property
    def description(self) -> str:
        """What the schedule is for."""
        return self.spec.description

    @property
    def last_run_state(self) -> str | None:
        """The state of the newest run."""
        return self.last_run.state if self.last_run else None

    @property
    def last_run_at(self) -> datetime | None:
        """When the newest run was created."""
        return self.last_run.created_at if self.last_run else None


def schedule_view(
    session: Session,
    row: ScheduleRow,
    now: datetime,
    history: int = 20,
    *,
    runs: list[RunView] | None = None,
    names: dict[int, str] | None = None,
) -> ScheduleView:
    """A schedule's view with up to ``history`` recent runs (streaks count the last 50)."""
    if runs is None:
        runs = recent_runs(session, [row.id], limit=max(history, STREAK_WINDOW))[row.id]
    ended = {s.value for s in SETTLED}
    finished = [r for r in runs if r.state in ended]
    success = _streak(finished, {JobState.COMPLETED.value})
    failure = _streak(finished, {s.value for s in FAILED_ENDS})
    active = next((r for r in runs if r.state not in ended), None)
    if not row.enabled:
        health = "disabled"
    elif failure or row.last_error:
        health = "failing"
    elif active and row.last_skipped_slot and row.last_skipped_slot > active.created_at:
        health = "stalled"  # a run outlasted its next slot and still goes
    elif not runs:
        health = "never run"
    else:
        health = "ok"
    return ScheduleView(
        spec=spec_of(session, row, names),
        managed_by=row.managed_by,
        created_at=row.created_at,
        next_run_at=next_slot(timing_of(row), max(now, row.done_until)) if row.enabled else None,
        last_run=runs[0] if runs else None,
        active_run_id=active.job_id if active else None,
        success_streak=success,
        failure_streak=failure,
        health=health,
        skipped_slots=row.skipped_slots,
        last_skipped_slot=row.last_skipped_slot,
        last_error=row.last_error,
        runs=runs[:history],
    )


STREAK_WINDOW = 50  # runs read per schedule to count its streaks


def list_schedule_views(session: Session, now: datetime) -> list[ScheduleView]:
    """Every schedule's view (with its last five runs), by id, in four queries."""
    rows = list(session.scalars(select(ScheduleRow).order_by(ScheduleRow.id)))
    runs = recent_runs(session, [row.id for row in rows], limit=STREAK_WINDOW)
    names = node_names(session)
    return [
        schedule_view(session, row, now, history=5, runs=runs[row.id], names=names) for row in rows
    ]


def recent_runs(
    session: Session, schedule_ids: list[str], *, limit: int
) -> dict[str, list[RunView]]:
    """Each schedule's newest runs, newest first, with the files their last attempt skipped."""
    found: dict[str, list[RunView]] = {schedule_id: [] for schedule_id in schedule_ids}
    if not schedule_ids:
        return found
    rank = (
        func.row_number()
        .over(
            partition_by=JobRow.schedule_id, order_by=(JobRow.created_at.desc(), JobRow.id.desc())
        )
        .label("rank")
    )
    ranked = select(JobRow.id, rank).where(JobRow.schedule_id.in_(schedule_ids)).subquery()
    jobs = session.execute(
        select(
            JobRow.id,
            JobRow.schedule_id,
            JobRow.state,
            JobRow.labels,
            JobRow.slot_time,
            JobRow.created_at,
            JobRow.finished_at,
            JobRow.bytes_transferred,
            JobRow.files_completed,
            JobRow.error_text,
            JobRow.reason,
            JobRow.attempt_count,
        )
        .join(ranked, ranked.c.id == JobRow.id)
        .where(ranked.c.rank <= limit)
        .order_by(JobRow.created_at.desc(), JobRow.id.desc())
    ).all()
    latest = {job.id: job.attempt_count for job in jobs}
    skipped: dict[str, int] = {}
    if latest:
        for job_id, number, files in session.execute(
            select(AttemptRow.job_id, AttemptRow.number, AttemptRow.files_skipped).where(
                AttemptRow.job_id.in_(latest)
            )
        ):
            if latest[job_id] == number:
                skipped[job_id] = files
    for job in jobs:
        found[job.schedule_id].append(
            RunView(
                job_id=job.id,
                state=job.state,
                trigger=(job.labels or {}).get("trigger", "schedule"),
                slot_time=job.slot_time,
                created_at=job.created_at,
                finished_at=job.finished_at,
                bytes_transferred=job.bytes_transferred,
                files_completed=job.files_completed,
                files_skipped=skipped.get(job.id, 0),
                error_text=job.error_text or job.reason,
            )
        )
    return found


def _streak(finished: list[RunView], states: set[str]) -> int:
    count = 0
    for run in finished:
        if run.state not in states:
            break
        count += 1
    return count


def show_schedule(ctx: ServiceContext, schedule_id: str, history: int = 20) -> ScheduleView:
    """One schedule with up to ``history`` recent runs."""
    with ctx.sessions() as session:
        return schedule_view(session, get_schedule(session, schedule_id), ctx.now(), history)


def list_schedules(ctx: ServiceContext) -> list[ScheduleView]:
    """Every schedule with its last five runs, by id."""
    with ctx.sessions() as session:
        return list_schedule_views(session, ctx.now())
