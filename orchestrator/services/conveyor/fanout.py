"""Fan-out jobs: a parent's parts, and the parent's state, bytes and files summed up from them
whenever a part changes state (in the part's own unit of work)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, aliased

from orchestrator.db.tables import JobFileRow, JobRow, NodeRow
from orchestrator.domain.checksums import checksum_disagreements
from orchestrator.domain.deadlines import lateness
from orchestrator.domain.fanout import fanout_state, total
from orchestrator.domain.jobs import TransferOptions
from orchestrator.domain.states import FAILED_ENDS, SETTLED, JobState
from orchestrator.services.context import UnitOfWork
from orchestrator.services.events import record

_DESTINATION = aliased(NodeRow)
LISTED = 3  # files named in a reason


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
    locked = session.execute(
        select(JobRow.state, JobRow.deadline).where(JobRow.id == parent_id).with_for_update()
    ).first()
    if locked is None:
        return None
    current, deadline = locked
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
            JobRow.id,
            JobRow.attempt_count,
            JobRow.eta,
            JobRow.at_risk,
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
    differ = _checksums_differ(session, parent_id, parts) if target is JobState.COMPLETED else None
    if differ is not None:
        target = JobState.NEEDS_ATTENTION
    values: dict[str, Any] = {
        "bytes_transferred": sum(p.bytes_transferred for p in parts),
        "bytes_expected": total([p.bytes_expected for p in parts]),
        "files_completed": sum(p.files_completed for p in parts),
        "files_expected": total([p.files_expected for p in parts]),
        "files_skipped": sum(p.files_skipped for p in parts),
        "updated_at": at,
    }
    still_open = [p for p in parts if JobState(p.state) not in SETTLED]
    if still_open:  # the parent ends with its last part: as late, and at risk, as its open ones
        values["eta"] = max((p.eta for p in still_open if p.eta is not None), default=None)
        values["at_risk"] = any(p.at_risk for p in still_open)
    before = JobState(current)
    if target != before:
        values.update(state=target, state_changed_at=at)
        if target in SETTLED:
            values["finished_at"] = at if target.is_terminal else None
        else:  # open again (a retry): the last end is history
            values.update(finished_at=None, reason=None, acknowledged_at=None, acknowledged_by=None)
    if differ is not None:
        values["reason"] = differ
    elif target in FAILED_ENDS:
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
    if target.is_terminal and target is not JobState.CANCELED and deadline and at > deadline:
        record(session, parent_id, "deadline", lateness(at, deadline), at=at)
    return target


def _checksums_differ(session: Session, parent_id: str, parts: Sequence[Any]) -> str | None:
    """Why the destinations' copies are not the same file, when the job read checksums: the
    first files whose checksums two destinations reported differently (None: they agree).

    A file one destination reported no checksum for is the part's own concern (its
    ``require_checksums``, which excuses files it did not write); here only two checksums
    that were both reported are compared.
    """
    options = session.scalar(select(JobRow.options).where(JobRow.id == parent_id))
    if not TransferOptions.model_validate(options or {}).reads_checksums:
        return None
    latest = {p.id: p.attempt_count for p in parts}
    label = {p.id: f"{p.name}:{p.destination_path}" for p in parts}
    per_destination: dict[str, dict[str, str | None]] = {label[p.id]: {} for p in parts}
    rows = session.execute(
        select(JobFileRow.job_id, JobFileRow.attempt_number, JobFileRow.path, JobFileRow.checksum)
        .where(JobFileRow.job_id.in_(list(latest)), JobFileRow.checksum.is_not(None))
        .order_by(JobFileRow.job_id, JobFileRow.position)
    ).all()
    for job_id, attempt_number, path, checksum in rows:
        if attempt_number == latest[job_id]:
            per_destination[label[job_id]][path] = checksum
    found = [
        d
        for d in checksum_disagreements(per_destination)
        if None not in d.checksums.values()  # reported by some destinations only: not compared
    ]
    if not found:
        return None
    named = "; ".join(str(d) for d in found[:LISTED])
    more = f" and {len(found) - LISTED} more file(s)" if len(found) > LISTED else ""
    return f"the destinations' copies differ: {named}{more}"
