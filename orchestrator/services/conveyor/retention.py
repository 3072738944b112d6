"""The end of the line: ended jobs leave the database after ORCH_HISTORY_DAYS, archived first.

A job that ended (completed, failed or canceled) longer ago than that is written, with its
attempts and its event log, as one JSON line to ``ORCH_ARCHIVE_DIR/jobs-<day it ended>.jsonl``
(when an archive directory is set), then deleted with everything that refers to it (attempts,
events, alerts and the job's per-minute progress go by cascade). Per-minute throughput rows of
node pairs older than that go too. A job that needs attention stays until a person settles it.
Work is done in batches, each archived before it is deleted, so a crash at any line loses no
history: the next run writes the batch again (an archive line can appear twice; its ``id``
tells).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from orchestrator.db.tables import AttemptRow, JobEventRow, JobRow, ThroughputMinuteRow
from orchestrator.domain.states import TERMINAL_STATES
from orchestrator.services.context import ServiceContext

BATCH = 500


@dataclass
class Pruned:
    """What one run removed."""

    jobs: int = 0
    archived: int = 0
    minutes: int = 0

    def __str__(self) -> str:
        kept = f" ({self.archived} archived first)" if self.archived else ""
        return f"{self.jobs} ended job(s) removed{kept}, {self.minutes} throughput row(s)"


def prune_history(ctx: ServiceContext) -> Pruned:
    """Archive and delete what ended before the retention window; a no-op when it is off."""
    pruned = Pruned()
    days = ctx.settings.history_days
    if not days:
        return pruned
    cutoff = ctx.now() - timedelta(days=days)
    archive = ctx.settings.archive_dir
    while True:
        with ctx.sessions() as session:
            jobs = list(
                session.scalars(
                    select(JobRow)
                    .where(
                        JobRow.state.in_([s.value for s in TERMINAL_STATES]),
                        JobRow.finished_at < cutoff,
                        # A fan-out's parts go with their parent, never before it: a part that
                        # ended long ago may belong to a job whose other parts still run.
                        JobRow.parent_id.is_(None),
                    )
                    .order_by(JobRow.finished_at)
                    .limit(BATCH)
                )
            )
            if not jobs:
                break
            parents = [job.id for job in jobs if job.is_parent]
            parts = (
                list(session.scalars(select(JobRow).where(JobRow.parent_id.in_(parents))))
                if parents
                else []
            )
            if archive is not None:
                _archive(session, jobs + parts, archive)
                pruned.archived += len(jobs) + len(parts)
            removed = [job.id for job in jobs + parts]
            session.execute(delete(JobRow).where(JobRow.id.in_(removed)))
            session.commit()
            pruned.jobs += len(removed)
        if len(jobs) < BATCH:
            break
    with ctx.sessions() as session:
        gone = session.execute(
            delete(ThroughputMinuteRow).where(ThroughputMinuteRow.minute < cutoff)
        )
        pruned.minutes = int(getattr(gone, "rowcount", 0) or 0)
        session.commit()
    return pruned


def _archive(session: Session, jobs: list[JobRow], folder: Path) -> None:
    """Append each job, its attempts and events as one JSON line to its day's file; fsync."""
    ids = [job.id for job in jobs]
    attempts: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    for attempt in session.scalars(
        select(AttemptRow).where(AttemptRow.job_id.in_(ids)).order_by(AttemptRow.number)
    ):
        attempts[attempt.job_id].append(_columns(attempt))
    events: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    for event in session.scalars(
        select(JobEventRow).where(JobEventRow.job_id.in_(ids)).order_by(JobEventRow.id)
    ):
        events[event.job_id].append(_columns(event))
    by_day: dict[str, list[str]] = {}
    for job in jobs:
        line = {**_columns(job), "attempts": attempts[job.id], "events": events[job.id]}
        day = job.finished_at.date().isoformat() if job.finished_at else "undated"
        by_day.setdefault(day, []).append(json.dumps(line, default=str, sort_keys=True))
    folder.mkdir(parents=True, exist_ok=True)
    for day, lines in by_day.items():
        path = folder / f"jobs-{day}.jsonl"
        with path.open("a", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")
            out.flush()
            os.fsync(out.fileno())


def _columns(row: Any) -> dict[str, Any]:
    """A row's columns by name, dates as ISO text."""
    values = {}
    for column in row.__table__.columns:
        value = getattr(row, column.key)
        values[column.key] = value.isoformat() if isinstance(value, datetime) else value
    return values
