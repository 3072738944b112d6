"""Running schedules: the tick that turns due slots into jobs, run-now, and run history."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from orchestrator.db.engine import rowcount
from orchestrator.db.tables import AttemptRow, JobRow, ScheduleRow
from orchestrator.domain.schedules import ScheduleSpec, ScheduleTiming, due_slot, next_slot
from orchestrator.domain.states import TERMINAL_STATES, JobState
from orchestrator.errors import ConfigError, OrchestratorError
from orchestrator.services.context import ServiceContext
from orchestrator.services.jobs import Created, create_job, job_by_key
from orchestrator.services.schedules import ScheduleNotFound, get_schedule, node_names, spec_of

log = logging.getLogger(__name__)

# A run in one of these states may still move bytes; NEEDS_ATTENTION waits for a person and
# counts as a failed run, so it does not hold the schedule back.
_ENDED = {*TERMINAL_STATES, JobState.NEEDS_ATTENTION}
_FAILED = {JobState.FAILED.value, JobState.NEEDS_ATTENTION.value}


class RunStillActive(ConfigError):
    """A run of this schedule is still going."""


def timing_of(row: ScheduleRow) -> ScheduleTiming:
    """A schedule row's timing."""
    return ScheduleTiming(
        cron=row.cron, interval_seconds=row.interval_seconds, timezone=row.timezone
    )


def slot_key(schedule_id: str, slot: datetime) -> str:
    """The idempotency key of a slot's job: a slot makes at most one job."""
    return f"schedule:{schedule_id}:{slot.isoformat()}"


@dataclass
class TickSummary:
    """What one tick did, in words for Flower."""

    started: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        parts = [
            f"{len(self.started)} run(s) started" + _listed(self.started),
            f"{len(self.skipped)} slot(s) skipped" + _listed(self.skipped),
        ]
        if self.waiting:
            parts.append(f"{len(self.waiting)} waiting for a run to end" + _listed(self.waiting))
        if self.errors:
            parts.append(f"{len(self.errors)} failed" + _listed(self.errors))
        return "; ".join(parts)


def _listed(items: list[str]) -> str:
    return f" ({', '.join(items)})" if items else ""


@dataclass(frozen=True)
class _Due:
    schedule_id: str
    done_until: datetime
    updated_at: datetime
    slot: datetime
    overlap: str
    active: JobRow | None

    @property
    def name(self) -> str:
        return f"{self.schedule_id}@{self.slot:%Y-%m-%d %H:%M}"

    def held_by_another_run(self) -> bool:
        """Whether a run other than this slot's own is still going."""
        key = slot_key(self.schedule_id, self.slot)
        return self.active is not None and self.active.idempotency_key != key


class _SlotMoved(OrchestratorError):
    """The schedule changed since the tick read it; the next tick looks again."""


def tick(ctx: ServiceContext) -> TickSummary:
    """Create the job of every due slot (once per slot, however many ticks race).

    One schedule's trouble never holds the others back: it is logged and kept on the
    schedule (``last_error``), and the tick goes on.
    """
    summary = TickSummary()
    with ctx.sessions() as session:
        due = _due_slots(session, ctx.now())
    for item in due:
        try:
            _run_slot(ctx, item, summary)
        except OperationalError:
            raise  # the database is away: the task retries, nothing was half done
        except (OrchestratorError, ValidationError) as exc:
            # The slot cannot make a job as the schedule stands: say why and move on.
            log.warning("schedule %s: slot %s made no job: %s", item.schedule_id, item.slot, exc)
            _advance(ctx, item, error=str(exc))
            summary.errors.append(f"{item.name}: {exc}")
        except Exception as exc:
            log.exception(
                "schedule %s: slot %s failed; trying again next tick", item.schedule_id, item.slot
            )
            _note_error(ctx, item.schedule_id, f"{type(exc).__name__}: {exc}")
            summary.errors.append(f"{item.name}: {type(exc).__name__}")
    return summary


def _run_slot(ctx: ServiceContext, item: _Due, summary: TickSummary) -> None:
    if item.held_by_another_run():
        assert item.active is not None
        if item.overlap == "queue":
            summary.waiting.append(item.name)  # the slot stays due until the active run ends
        elif _advance(ctx, item, skipped=True):
            summary.skipped.append(f"{item.name}: run {item.active.id} still {item.active.state}")
        return
    with ctx.sessions() as session:
        spec = spec_of(session, get_schedule(session, item.schedule_id))
    try:
        created = create_job(
            ctx,
            spec.job_spec("schedule"),
            idempotency_key=slot_key(item.schedule_id, item.slot),
            schedule_id=item.schedule_id,
            slot_time=item.slot,
            guard=lambda session: _claim_slot(session, item),
        )
    except _SlotMoved:
        return
    if created.created:
        summary.started.append(f"{item.name} job {created.job.id}")
    else:
        _advance(ctx, item)  # made before a crash or by a racing tick: only mark it done


def _claim_slot(session: Session, item: _Due) -> None:
    """Lock the schedule; refuse if it changed or a run started; mark the slot done."""
    row = lock_schedule(session, item.schedule_id)
    if row is None or not row.enabled or row.updated_at != item.updated_at:
        raise _SlotMoved(f"schedule {item.schedule_id} changed")
    if row.done_until != item.done_until:
        raise _SlotMoved(f"slot {item.slot} taken")
    active = active_run(session, item.schedule_id)
    if active is not None and active.idempotency_key != slot_key(item.schedule_id, item.slot):
        raise _SlotMoved(f"run {active.id} started")
    row.done_until = item.slot
    row.last_error = None


def lock_schedule(session: Session, schedule_id: str) -> ScheduleRow | None:
    """The schedule row, locked for this transaction (an UPDATE locks on SQLite too)."""
    session.execute(
        update(ScheduleRow)
        .where(ScheduleRow.id == schedule_id)
        .values(updated_at=ScheduleRow.updated_at)
        .execution_options(synchronize_session=False)
    )
    return session.scalar(
        select(ScheduleRow)
        .where(ScheduleRow.id == schedule_id)
        .execution_options(populate_existing=True)
    )


def _due_slots(session: Session, now: datetime) -> list[_Due]:
    due = []
    for row in session.scalars(select(ScheduleRow).where(ScheduleRow.enabled.is_(True))):
        try:
            slot = due_slot(timing_of(row), row.done_until, now)
        except ValueError as exc:
            log.error("schedule %s: cannot compute its slots: %s", row.id, exc)
            continue
        if slot is not None:
            active = active_run(session, row.id)
            due.append(_Due(row.id, row.done_until, row.updated_at, slot, row.overlap, active))
    return due


def _advance(ctx: ServiceContext, item: _Due, *, skipped: bool = False, error: str = "") -> bool:
    """Mark the slot done (compare-and-set: only one racing tick counts a skip)."""
    values: dict[str, object] = {"done_until": item.slot, "last_error": error or None}
    if skipped:
        values["skipped_slots"] = ScheduleRow.skipped_slots + 1
        values["last_skipped_slot"] = item.slot
    with ctx.sessions() as session:
        result = session.execute(
            update(ScheduleRow)
            .where(ScheduleRow.id == item.schedule_id, ScheduleRow.done_until == item.done_until)
            .values(**values)
        )
        session.commit()
        return rowcount(result) == 1


def _note_error(ctx: ServiceContext, schedule_id: str, error: str) -> None:
    with ctx.sessions() as session:
        session.execute(
            update(ScheduleRow).where(ScheduleRow.id == schedule_id).values(last_error=error[:2000])
        )
        session.commit()


def active_run(session: Session, schedule_id: str) -> JobRow | None:
    """The schedule's newest run that may still move bytes, if any."""
    return session.scalar(
        select(JobRow)
        .where(JobRow.schedule_id == schedule_id, JobRow.state.not_in(_ENDED))
        .order_by(JobRow.created_at.desc())
        .limit(1)
    )


def run_now(
    ctx: ServiceContext, schedule_id: str, *, idempotency_key: str | None = None
) -> Created:
    """Start a run outside the timing (refused while a run is still going)."""
    key = f"run:{schedule_id}:{idempotency_key}" if idempotency_key else None
    with ctx.sessions() as session:
        spec = spec_of(session, get_schedule(session, schedule_id))
        known = job_by_key(session, key) if key else None
        if known is not None:
            return Created(known, created=False)

    def refuse_while_active(session: Session) -> None:
        if lock_schedule(session, schedule_id) is None:
            raise ScheduleNotFound(f"no schedule {schedule_id!r}")
        active = active_run(session, schedule_id)
        if active is not None:
            raise RunStillActive(
                f"run {active.id} of schedule {schedule_id!r} is still {active.state}; "
                "wait for it or cancel it"
            )

    return create_job(
        ctx,
        spec.job_spec("manual"),
        idempotency_key=key,
        schedule_id=schedule_id,
        slot_time=ctx.now(),
        guard=refuse_while_active,
    )


# -- reading a schedule's story --------------------------------------------------------------


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
    ended = {s.value for s in _ENDED}
    finished = [r for r in runs if r.state in ended]
    success = _streak(finished, {JobState.COMPLETED.value})
    failure = _streak(finished, _FAILED)
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
