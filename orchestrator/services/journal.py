"""State changes of jobs: compare-and-set against the transition table, with an event row."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from orchestrator.db.engine import rowcount
from orchestrator.db.tables import JobEventRow, JobRow
from orchestrator.domain.states import JobState, can_move
from orchestrator.errors import OrchestratorError
from orchestrator.services import alerts


class InvalidTransition(OrchestratorError):
    """The transition table does not allow this move."""


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
    """Append one event to a job's log (the caller commits)."""
    session.add(
        JobEventRow(
            job_id=job_id,
            at=at,
            kind=kind,
            from_state=from_state,
            to_state=to_state,
            message=message,
            data=data or {},
        )
    )


def move(
    session: Session,
    job_id: str,
    expected: JobState | set[JobState],
    target: JobState,
    message: str,
    *,
    at: datetime,
    values: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
) -> JobState | None:
    """Move a job from an expected state to ``target`` if it is still there.

    Returns the state it moved from, or None when another process got there first (the
    compare-and-set found the row in another state). The caller commits.
    """
    states = {expected} if isinstance(expected, JobState) else set(expected)
    for state in states:
        if not can_move(state, target):
            raise InvalidTransition(f"a {state} job cannot become {target}")
    for state in states:
        changes: dict[str, Any] = {"state": target, "state_changed_at": at, "updated_at": at}
        if target.is_terminal:
            changes["finished_at"] = at
        changes.update(values or {})
        result = session.execute(
            update(JobRow)
            .where(JobRow.id == job_id, JobRow.state == state)
            .values(**changes)
            .execution_options(synchronize_session=False)
        )
        if rowcount(result) == 1:
            record(
                session,
                job_id,
                "state",
                message,
                at=at,
                from_state=state,
                to_state=target,
                data=data,
            )
            if state != target:
                alerts.on_job_end(session, job_id, target, at)
            return state
    return None
