"""A job's stored files and their checksums (what its last completed transfer reported), paged."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy import ScalarSelect, Select, func, select

from orchestrator.db.tables import JobFileRow
from orchestrator.services.context import ServiceContext
from orchestrator.services.conveyor.jobs import get_job

CSV_COLUMNS = ("attempt", "path", "size", "status", "checksum_type", "checksum")
_EXPORT_BATCH = 1000


@dataclass(frozen=True)
class StoredFile:
    """One file of a job, as its source node reported it when the transfer completed."""

    attempt: int
    path: str
    size: int
    status: str
    checksum_type: str | None
    checksum: str | None

    def row(self) -> tuple[object, ...]:
        """The file as a CSV row, in CSV_COLUMNS order."""
        return (
            self.attempt,
            self.path,
            self.size,
            self.status,
            self.checksum_type or "",
            self.checksum or "",
        )


@dataclass(frozen=True)
class StoredFilesPage:
    """One page of a job's stored files."""

    items: list[StoredFile] = field(default_factory=list)
    offset: int = 0
    total: int = 0

    @property
    def next_offset(self) -> int | None:
        """Where the next page starts, or None on the last one."""
        end = self.offset + len(self.items)
        return end if end < self.total else None


def _query(job_id: str) -> Select[int, str, int, str, str | None, str | None]:
    return (
        select(
            JobFileRow.attempt_number,
            JobFileRow.path,
            JobFileRow.size,
            JobFileRow.status,
            JobFileRow.checksum_type,
            JobFileRow.checksum,
        )
        .where(JobFileRow.job_id == job_id, JobFileRow.attempt_number == _latest(job_id))
        .order_by(JobFileRow.position)
    )


def _latest(job_id: str) -> ScalarSelect[int]:
    """The newest attempt whose files are stored (a retried job keeps the older ones)."""
    return (
        select(func.max(JobFileRow.attempt_number))
        .where(JobFileRow.job_id == job_id)
        .scalar_subquery()
    )


def stored_files(
    ctx: ServiceContext, job_id: str, *, offset: int = 0, limit: int = 100
) -> StoredFilesPage:
    """The job's stored files from ``offset`` (raises JobNotFound for an unknown job)."""
    with ctx.sessions() as session:
        get_job(session, job_id)
        total = session.scalar(
            select(func.count())
            .select_from(JobFileRow)
            .where(JobFileRow.job_id == job_id, JobFileRow.attempt_number == _latest(job_id))
        )
        rows = session.execute(_query(job_id).offset(offset).limit(limit)).all()
    return StoredFilesPage([StoredFile(*row) for row in rows], offset, int(total or 0))


def every_stored_file(ctx: ServiceContext, job_id: str) -> Iterator[StoredFile]:
    """All of the job's stored files, read a batch at a time (for an export)."""
    offset = 0
    while True:
        page = stored_files(ctx, job_id, offset=offset, limit=_EXPORT_BATCH)
        yield from page.items
        if page.next_offset is None:
            return
        offset = page.next_offset


def csv_export(ctx: ServiceContext, job_id: str) -> Iterator[str]:
    """The job's stored files as CSV text (a header, then a row per file), in chunks."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for n, stored in enumerate(every_stored_file(ctx, job_id), start=1):
        writer.writerow(stored.row())
        if n % _EXPORT_BATCH == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def csv_filename(job_id: str) -> str:
    """The name an export is saved under."""
    return f"job-{job_id}-files.csv"
