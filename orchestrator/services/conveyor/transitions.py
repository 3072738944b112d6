"""The one way a job changes state: compare-and-set against the transition table, an event row,
and the alerts an end calls for, all in the caller's unit of work."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, Table, select, update
from sqlalchemy.orm import InstrumentedAttribute, aliased

from orchestrator.db.bulk import insert_rows
from orchestrator.db.tables import JobEventRow, JobRow, NodeRow
from orchestrator.domain.jobs import job_label
from orchestrator.domain.states import FAILED_ENDS, JobState, can_move
from orchestrator.errors import OrchestratorError
from orchestrator.services.alerts.outbox import on_job_end
from orchestrator.services.context import UnitOfWork
from orchestrator.services.conveyor.fanout import settle_parents
from orchestrator.services.events import record
from orchestrator.taskqueue import TaskName

_SOURCE, _DESTINATION = aliased(NodeRow), aliased(NodeRow)


class InvalidTransition(OrchestratorError):
    """The transition table does not allow this move."""


def move(
    work: UnitOfWork,
    job_id: str,
    expected: JobState | set[JobState] | frozenset[JobState],
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
        moved = work.session.execute(
            update(JobRow)
            .where(JobRow.id == job_id, JobRow.state == state)
            .values(**changes)
            .returning(JobRow.parent_id)
            .execution_options(synchronize_session=False)
        ).first()
        if moved is not None:
            record(
                work.session,
                job_id,
                "state",
                message,
                at=at,
                from_state=state,
                to_state=target,
                data=data,
            )
            if state != target:
                _ended(work, {job_id: moved.parent_id}, target, at)
            return state
    return None


def _ended(
    work: UnitOfWork, parents: dict[str, str | None], target: JobState, at: datetime
) -> None:
    """What a move calls for: alerts for an ordinary job; a fan-out part instead sums its
    parent up again, and the parent alerts when its own state ends."""
    for job_id, parent_id in parents.items():
        if parent_id is None:
            on_job_end(work, job_id, target, at)
            report_failure(work, job_id, target)
    for parent_id, parent_state in settle_parents(
        work, [p for p in parents.values() if p is not None], at=at
    ):
        on_job_end(work, parent_id, parent_state, at)
        report_failure(work, parent_id, parent_state)


def move_many(
    work: UnitOfWork,
    messages: dict[str, str],
    expected: JobState,
    target: JobState,
    *,
    at: datetime,
    values: dict[str, Any] | None = None,
    returning: tuple[InstrumentedAttribute[Any], ...] = (),
) -> dict[str, Row[Any]]:
    """``move`` for many jobs at once: one UPDATE, one INSERT of their events.

    ``messages`` holds each job's event message by id. Returns the jobs that moved (one
    another process moved first is left out), in the order given, each with its ``returning``
    columns as they are after the move.
    """
    if not can_move(expected, target):
        raise InvalidTransition(f"a {expected} job cannot become {target}")
    if not messages:
        return {}
    changes: dict[str, Any] = {"state": target, "state_changed_at": at, "updated_at": at}
    if target.is_terminal:
        changes["finished_at"] = at
    changes.update(values or {})
    rows = work.session.execute(
        update(JobRow)
        .where(JobRow.id.in_(list(messages)), JobRow.state == expected)
        .values(**changes)
        .returning(JobRow.id, *returning, JobRow.parent_id)
        .execution_options(synchronize_session=False)
    ).all()
    moved = {row[0]: row for row in rows}
    ordered = [job_id for job_id in messages if job_id in moved]
    record_moves(
        work,
        [(job_id, expected, messages[job_id], moved[job_id].parent_id) for job_id in ordered],
        target,
        at,
    )
    return {job_id: moved[job_id] for job_id in ordered}


def record_moves(
    work: UnitOfWork,
    moves: list[tuple[str, JobState, str, str | None]],
    target: JobState,
    at: datetime,
) -> None:
    """What follows jobs' compare-and-set to ``target`` (each move: the job's id, the state
    it left, its event's message, its fan-out parent): one INSERT of their events, then
    alerts and parents."""
    if not moves:
        return
    insert_rows(
        work.session,
        _EVENTS,
        ("job_id", "from_state", "message"),
        [(job_id, state, message) for job_id, state, message, _ in moves],
        same={"at": at, "kind": "state", "to_state": target, "data": {}},
    )
    _ended(work, {job_id: parent for job_id, _, _, parent in moves}, target, at)


_EVENTS = cast(Table, JobEventRow.__table__)


def report_failure(work: UnitOfWork, job_id: str, target: JobState) -> None:
    """A job that ends badly sends one JOB_FAILED task after the commit (Flower's view)."""
    if target not in FAILED_ENDS:
        return
    row = work.session.execute(
        select(JobRow.source_paths, JobRow.destination_path, _SOURCE.name, _DESTINATION.name)
        .join(_SOURCE, _SOURCE.id == JobRow.source_node_id)
        .join(_DESTINATION, _DESTINATION.id == JobRow.destination_node_id)
        .where(JobRow.id == job_id)
    ).one()
    paths, destination_path, source_name, destination_name = row
    first = paths[0]["source"] if paths else ""
    label = job_label(job_id, source_name, first, destination_name, destination_path)
    enqueue = work.ctx.enqueue
    work.after_commit(
        f"{TaskName.JOB_FAILED}:{job_id}",
        lambda: enqueue(TaskName.JOB_FAILED, job_id, argsrepr=label),
    )
