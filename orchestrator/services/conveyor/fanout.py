"""Fan-out jobs: a parent's parts, and the parent's state, bytes and files summed up from them
whenever a part changes state (in the part's own unit of work)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, aliased

from orchestrator.db.tables import JobRow, NodeRow
from orchestrator.domain.fanout import fanout_state, total
from orchestrator.domain.states import FAILED_ENDS, SETTLED, JobState
from orchestrator.services.context import UnitOfWork
from orchestrator.services.events import record

_DESTINATION = aliased(NodeRow)


def parts_of(session: Session, parent_id: str) -> list[JobRow]:
    """A fan-out job's parts (one job per destination), in the order they were given."""
    return list(
        session.scalars(
            select(JobRow)
            .where(JobRow.parent_id == parent_id)
            .order_by(JobRow.created_at, JobRow.id)
        )
    )


def settle_parents(
    work: UnitOfWork, parent_ids: Iterable[str], *, at: datetime
) -> list[tuple[str, JobState]]:
    """Sum each parent up from its parts; returns the parents whose state changed.

    Each parent row is locked first (FOR UPDATE on PostgreSQL; SQLite has one writer), in id
    order, so that two parts ending at once in two transactions update it one after the other
    and the second one sees the first one's end.
    """
    changed = []
    for parent_id in sorted(set(parent_ids)):
        moved = _settle(work.session, parent_id, at)
        if moved is not None:
            changed.append((parent_id, moved))
    return changed


def _settle(session: Session, parent_id: str, at: datetime) -> JobState | None:
    current = session.scalar(select(JobRow.state).where(JobRow.id == parent_id).with_for_update())
    if current is None:
        return None
    parts = session.execute(
        select(
            JobRow.state,
            JobRow.bytes_transferred,
            JobRow.bytes_expected,
            JobRow.files_completed,
            JobRow.files_expected,
            JobRow.files_skipped,
            JobRow.reason,
            JobRow.error_text,
            JobRow.destination_path,
            _DESTINATION.name,
        )
        .join(_DESTINATION, _DESTINATION.id == JobRow.destination_node_id)
        .where(JobRow.parent_id == parent_id)
        .order_by(JobRow.created_at, JobRow.id)
    ).all()
    if not parts:
        return None
    states = [JobState(p.state) for p in parts]
    target = fanout_state(states)
    values: dict[str, Any] = {
        "bytes_transferred": sum(p.bytes_transferred for p in parts),
        "bytes_expected": total([p.bytes_expected for p in parts]),
        "files_completed": sum(p.files_completed for p in parts),
        "files_expected": total([p.files_expected for p in parts]),
        "files_skipped": sum(p.files_skipped for p in parts),
        "updated_at": at,
    }
    before = JobState(current)
    if target != before:
        values.update(state=target, state_changed_at=at)
        if target in SETTLED:
            values["finished_at"] = at if target.is_terminal else None
        else:  # open again (a retry): the last end is history
            values.update(finished_at=None, reason=None, acknowledged_at=None, acknowledged_by=None)
    if target in FAILED_ENDS:
        bad = [p for p in parts if p.state != JobState.COMPLETED]
        values["reason"] = "; ".join(
            f"{p.name}:{p.destination_path} {p.state.replace('_', ' ')}"
            + (f" ({why})" if (why := p.reason or p.error_text) else "")
            for p in bad
        )
    session.execute(
        update(JobRow)
        .where(JobRow.id == parent_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if target == before:
        return None
    done = sum(state is JobState.COMPLETED for state in states)
    message = f"{done} of {len(states)} destinations completed"
    if target in FAILED_ENDS:
        message += f": {values['reason']}"
    record(session, parent_id, "state", message, at=at, from_state=before, to_state=target)
    return target
