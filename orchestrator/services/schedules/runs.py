"""Making a schedule's runs: the tick that turns due slots into jobs, and run-now."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from orchestrator.db.engine import rowcount
from orchestrator.db.tables import JobRow, ScheduleRow
from orchestrator.domain.schedules import ScheduleTiming, due_slot
from orchestrator.domain.states import SETTLED
from orchestrator.errors import ConfigError, OrchestratorError
from orchestrator.services.context import ServiceContext
from orchestrator.services.conveyor.jobs import Created, create_job, job_by_key
from orchestrator.services.schedules.store import ScheduleNotFound, get_schedule, spec_of

log = logging.getLogger(__name__)


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
            spec.job_spec("schedule", ctx.now()),
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
        # NEEDS_ATTENTION waits for a person and counts as a failed run: it holds nothing back
        .where(JobRow.schedule_id == schedule_id, JobRow.state.not_in(SETTLED))
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
        spec.job_spec("manual", ctx.now()),
        idempotency_key=key,
        schedule_id=schedule_id,
        slot_time=ctx.now(),
        guard=refuse_while_active,
    )
