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
    def moved(self) -> int:
        """Bytes counted in the chart."""
        return sum(bar.bytes for bar in self.bars)


def job_progress(ctx: ServiceContext, job_id: str) -> JobProgress:
    """From the job's first minute that moved something (else its creation) to its end (or now),
    in at most MOST_BARS bars."""
    with ctx.sessions() as session:
        job = get_job(session, job_id)
        rows = session.execute(
            select(JobMinuteRow.minute, JobMinuteRow.bytes, JobMinuteRow.files)
            .where(JobMinuteRow.job_id == job_id)
            .order_by(JobMinuteRow.minute)
        ).all()
        created, finished = job.created_at, job.finished_at
    end = minute_of(finished or ctx.now())
    start = rows[0][0] if rows else minute_of(created)
    if rows:
        end = max(end, rows[-1][0])
    start = min(start, end - timedelta(minutes=FEWEST_BARS - 1))
    span = int((end - start).total_seconds() // 60) + 1
    per_bar = -(-span // MOST_BARS)
    count = -(-span // per_bar)
    moved = [[0, 0] for _ in range(count)]
    for minute, nbytes, files in rows:
        slot = min(count - 1, int((minute - start).total_seconds() // 60) // per_bar)
        moved[slot][0] += int(nbytes)
        moved[slot][1] += int(files)
    bars = [
        Minute(start + timedelta(minutes=i * per_bar), nbytes, files)
        for i, (nbytes, files) in enumerate(moved)
    ]
    return JobProgress(bars, per_bar, finished)
