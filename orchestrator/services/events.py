"""A job's event log: one row per thing that happened to the job, in its own transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from orchestrator.db.tables import JobEventRow
from orchestrator.domain.states import JobState


def record(
    session: Session,
    job_id: str,
    kind: str,
    message: str,
    *,
    at: datetime,
    from_state: JobState | None = None,
    to_state: JobState | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Append one event to a job's log (it commits with the caller's unit of work).

    A plain INSERT, not an ORM object: events are written often and never read back here.
    """
    session.execute(
        _INSERT,
        {
            "job_id": job_id,
            "at": at,
            "kind": kind,
            "from_state": from_state,
            "to_state": to_state,
            "message": message,
            "data": data or {},
        },
    )


_INSERT = insert(JobEventRow)  # built once; each event only binds its values


def events_of(session: Session, job_id: str) -> list[JobEventRow]:
    """A job's event log, oldest first."""
    return list(
        session.scalars(
            select(JobEventRow).where(JobEventRow.job_id == job_id).order_by(JobEventRow.id)
        )
    )
