"""Bytes and files moved per minute, per node pair and per job: tallied while progress is
applied, written with the same commit (the unit of work writes its tally just before it
commits)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session

from orchestrator.db.bulk import insert_rows
from orchestrator.db.engine import upsert
from orchestrator.db.tables import JobMinuteRow, ThroughputMinuteRow

PairKey = tuple[datetime, int, int]
JobKey = tuple[str, datetime]
# How far back a link's throughput is measured for an estimate of a new job's duration.
RATE_WINDOW = timedelta(minutes=15)


def minute_of(at: datetime) -> datetime:
    """The start of the minute ``at`` falls in."""
    return at.replace(second=0, microsecond=0)


class ThroughputTally:
    """Progress counted during one unit of work, per (minute, source node, destination node)
    and per (job, minute)."""

    def __init__(self) -> None:
        self.bytes: Counter[PairKey] = Counter()
        self.files: Counter[PairKey] = Counter()
        self.job_bytes: Counter[JobKey] = Counter()
        self.job_files: Counter[JobKey] = Counter()

    def add(
        self,
        at: datetime,
        job_id: str,
        source_id: int,
        destination_id: int,
        nbytes: int,
        files: int,
    ) -> None:
        """Count a job's progress (negative deltas are ignored)."""
        if nbytes <= 0 and files <= 0:
            return
        minute = minute_of(at)
        key = (minute, source_id, destination_id)
        self.bytes[key] += max(0, nbytes)
        self.files[key] += max(0, files)
        self.job_bytes[job_id, minute] += max(0, nbytes)
        self.job_files[job_id, minute] += max(0, files)

    def write(self, session: Session) -> None:
        """Add the tally to the per-minute rows (one upsert per node pair, in key order) and to
        the per-job rows (one statement for every job of the unit)."""
        insert = upsert(session)
        for key in sorted(self.bytes.keys() | self.files.keys()):
            minute, source_id, destination_id = key
            nbytes, files = self.bytes[key], self.files[key]
            statement = insert(ThroughputMinuteRow).values(
                minute=minute,
                source_node_id=source_id,
                destination_node_id=destination_id,
                bytes=nbytes,
                files=files,
            )
            session.execute(
                statement.on_conflict_do_update(
                    index_elements=["minute", "source_node_id", "destination_node_id"],
                    set_={
                        "bytes": ThroughputMinuteRow.bytes + nbytes,
                        "files": ThroughputMinuteRow.files + files,
                    },
                )
            )
        jobs = sorted(self.job_bytes.keys() | self.job_files.keys())  # one lock order for all
        insert_rows(  # one statement for the unit's jobs (PostgreSQL: one array per column)
            session,
            _JOB_MINUTES,
            ("job_id", "minute", "bytes", "files"),
            [(j, m, self.job_bytes[j, m], self.job_files[j, m]) for j, m in jobs],
            adding=("job_id", "minute"),
        )
        self.bytes.clear()
        self.files.clear()
        self.job_bytes.clear()
        self.job_files.clear()


_JOB_MINUTES = cast(Table, JobMinuteRow.__table__)


def measured_rate(
    session: Session, source_id: int, destination_id: int, now: datetime
) -> float | None:
    """Bytes per second the link moved in its busy minutes of the last RATE_WINDOW (None when
    it moved nothing): the throughput a new job on it can expect."""
    since = minute_of(now - RATE_WINDOW)
    total, minutes = session.execute(
        select(func.sum(ThroughputMinuteRow.bytes), func.count()).where(
            ThroughputMinuteRow.source_node_id == source_id,
            ThroughputMinuteRow.destination_node_id == destination_id,
            ThroughputMinuteRow.minute >= since,
            ThroughputMinuteRow.bytes > 0,
        )
    ).one()
    return float(total) / (60 * minutes) if minutes and total else None
