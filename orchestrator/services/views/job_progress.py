"""A job's progress over time: the bytes it moved per minute (or per few minutes on a long
job), from the per-job minutes the pollers write, for the chart on its page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from orchestrator.db.tables import JobMinuteRow
from orchestrator.services.context import ServiceContext
from orchestrator.services.conveyor.jobs import get_job
from orchestrator.services.conveyor.throughput import minute_of
from orchestrator.services.views.throughput import Minute

FEWEST_BARS = 10  # a job of a minute still reads as a moment in a chart, not one wide block
MOST_BARS = 60


@dataclass(frozen=True)
class JobProgress:
    """The chart's bars, oldest first (each ``bar_minutes`` long), and when the job ended."""

    bars: list[Minute]
    bar_minutes: int
    ended_at: datetime | None

    @property
    def per(self) -> str:
        """What one bar counts: 'minute' or 'N minutes'."""
        return "minute" if self.bar_minutes == 1 else f"{self.bar_minutes} minutes"


def job_progress(ctx: ServiceContext, job_id: str) -> JobProgress:
    """The chart of one job, read now."""
    with ctx.sessions() as session:
        job = get_job(session, job_id)
        rows = session.execute(
            select(JobMinuteRow.minute, JobMinuteRow.bytes, JobMinuteRow.files)
            .where(JobMinuteRow.job_id == job_id)
            .order_by(JobMinuteRow.minute)
        ).all()
        created, finished = job.created_at, job.finished_at
    moved = [Minute(minute, int(nbytes), int(files)) for minute, nbytes, files in rows]
    return chart_of(moved, created=created, finished=finished, now=ctx.now())


def chart_of(
    moved: list[Minute], *, created: datetime, finished: datetime | None, now: datetime
) -> JobProgress:
    """From the first minute that moved something (else the job's creation) to its end (or
    ``now``), at least FEWEST_BARS minutes, in at most MOST_BARS bars of whole minutes."""
    end = minute_of(finished or now)
    start = moved[0].minute if moved else minute_of(created)
    if moved:
        end = max(end, moved[-1].minute)
    start = min(start, end - timedelta(minutes=FEWEST_BARS - 1))
    span = int((end - start).total_seconds() // 60) + 1
    per_bar = -(-span // MOST_BARS)
    count = -(-span // per_bar)
    sums = [[0, 0] for _ in range(count)]
    for minute in moved:
        slot = min(count - 1, int((minute.minute - start).total_seconds() // 60) // per_bar)
        sums[slot][0] += minute.bytes
        sums[slot][1] += minute.files
    bars = [
        Minute(start + timedelta(minutes=i * per_bar), nbytes, files)
        for i, (nbytes, files) in enumerate(sums)
    ]
    return JobProgress(bars, per_bar, finished)
