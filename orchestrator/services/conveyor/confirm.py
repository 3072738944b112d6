"""Confirming transfers by id: what the change feed has not settled.

An open attempt is asked about with ``GET /ops/transfers/{id}`` when the feed has not mentioned
it for ``ORCH_UNSEEN_CHECK_SECONDS``, when a resync left it unconfirmed, or when its
``check_after`` has come: after an answer that settled nothing (an empty 200, a transfer
without a status, a 5xx, a timeout) it is asked again after 1, 2, 4 … s, capped at the poll
interval; a transfer the node does not know (404) is asked about less and less often until
``ORCH_LOST_AFTER_SECONDS`` decides. Only a definite status counts as seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Select, bindparam, or_, select, update
from sqlalchemy.orm import Session

from orchestrator.db.tables import AttemptRow, JobRow, NodeRow
from orchestrator.domain.states import MAY_HOLD_TRANSFER, AttemptState, JobState
from orchestrator.domain.transfers import TransferStatus
from orchestrator.errors import NodeError, NodeNotFound
from orchestrator.nodeapi.client import NodeClient
from orchestrator.services.context import ServiceContext
from orchestrator.services.conveyor.finisher import apply_snapshot, note_attempt, retry_delay
from orchestrator.services.conveyor.transitions import move

CHECKS_PER_POLL = 50  # GETs by id in one poll of one node
ERRORS_PER_POLL = 3  # a node that fails this many checks in a row is left for the next poll
DEFAULT_RETENTION = 129600  # an HSTS node's activity_retention by default (node-api.md §7.5)


@dataclass
class Checked:
    """What one round of checks did."""

    asked: int = 0
    moved: list[tuple[AttemptRow, JobState]] = field(default_factory=list)
    error: str | None = None


def unsettled_delay(ctx: ServiceContext, checks: int) -> timedelta:
    """When to ask again after ``checks`` answers that settled nothing: 1, 2, 4 … s, capped."""
    return timedelta(seconds=min(float(2**checks), ctx.settings.poll_interval))


def mark_unconfirmed(ctx: ServiceContext, node_id: int, *, not_seen_since: datetime) -> int:
    """Ask about every open transfer of the node that was not seen since ``not_seen_since``."""
    now = ctx.now()
    with ctx.sessions() as session:
        ids = session.scalars(
            _open(node_id).where(
                or_(AttemptRow.last_seen_at.is_(None), AttemptRow.last_seen_at < not_seen_since)
            )
        ).all()
        if ids:
            session.execute(
                update(AttemptRow)
                .where(AttemptRow.id.in_([a.id for a in ids]))
                .values(check_after=now)
            )
        session.commit()
        return len(ids)


def check_by_id(
    ctx: ServiceContext, client: NodeClient, node_id: int, *, unseen_for: timedelta
) -> Checked:
    """GET by id the open attempts that are due (see the module's docstring)."""
    now = ctx.now()
    cutoff = now - unseen_for
    with ctx.autocommit() as session:
        due = session.execute(_DUE, {"node": node_id, "now": now, "cutoff": cutoff}).all()
    checked = Checked()
    failures = 0
    for attempt_id, remote_id in due:
        assert remote_id is not None  # selected so
        checked.asked += 1
        try:
            snapshot = client.get_transfer(remote_id)
        except NodeNotFound:
            _missing(ctx, attempt_id, remote_id)
            continue
        except NodeError as exc:
            checked.error = str(exc)
            _unsettled(ctx, attempt_id)
            failures += 1
            if failures >= ERRORS_PER_POLL:
                break
            continue
        failures = 0
        if snapshot.status is TransferStatus.UNKNOWN:
            _unsettled(ctx, attempt_id)
            continue
        with ctx.unit_of_work() as work:
            attempt = work.session.get(AttemptRow, attempt_id)
            if attempt is not None:
                moved = apply_snapshot(
                    work, attempt, snapshot, now=ctx.now(), settings=ctx.settings
                )
                if moved is not None:
                    checked.moved.append((attempt, moved))
            work.commit()
    return checked


def _open_filter(node_id: int | ColumnElement[int]) -> tuple[ColumnElement[bool], ...]:
    """Attempts of this source node whose transfer is posted and not ended, of open jobs."""
    return (
        AttemptRow.source_node_id == node_id,
        AttemptRow.remote_id.is_not(None),
        AttemptRow.ended_at.is_(None),
        JobRow.state.in_(MAY_HOLD_TRANSFER),
    )


# The due checks of a poll, built once (bound per poll): open attempts whose check_after has
# come, or never planned and neither seen nor submitted since the cutoff.
_DUE = (
    select(AttemptRow.id, AttemptRow.remote_id)
    .join(JobRow, JobRow.id == AttemptRow.job_id)
    .where(
        *_open_filter(bindparam("node")),
        or_(
            AttemptRow.check_after <= bindparam("now"),
            (
                AttemptRow.check_after.is_(None)
                & or_(
                    AttemptRow.last_seen_at.is_(None), AttemptRow.last_seen_at < bindparam("cutoff")
                )
                & or_(
                    AttemptRow.submitted_at.is_(None), AttemptRow.submitted_at < bindparam("cutoff")
                )
            ),
        ),
    )
    .order_by(AttemptRow.check_after.is_(None), AttemptRow.check_after, AttemptRow.last_seen_at)
    .limit(CHECKS_PER_POLL)
)


def _open(node_id: int) -> Select[AttemptRow]:
    return (
        select(AttemptRow)
        .join(JobRow, JobRow.id == AttemptRow.job_id)
        .where(*_open_filter(node_id))
    )


def _unsettled(ctx: ServiceContext, attempt_id: str) -> None:
    """The node's answer settled nothing: ask again soon, a little later each time."""
    with ctx.sessions() as session:
        attempt = session.get(AttemptRow, attempt_id)
        if attempt is not None and attempt.ended_at is None:
            attempt.check_after = ctx.now() + unsettled_delay(ctx, attempt.unsettled_checks)
            attempt.unsettled_checks += 1
            session.commit()


def _missing(ctx: ServiceContext, attempt_id: str, remote_id: str) -> None:
    """The node does not know the transfer: its record expired, or the node lost history.

    A record can only have expired once the node's retention has passed since we last saw the
    transfer: that is said as such (NEEDS_ATTENTION), never taken for a loss. Otherwise the
    transfer may still run and come back in the feed, so a new attempt waits
    ``lost_after_seconds`` (overwrite and resume policies skip what already arrived).
    """
    now = ctx.now()
    lost_after = timedelta(seconds=ctx.settings.lost_after_seconds)
    with ctx.unit_of_work() as work:
        session = work.session
        attempt = session.get(AttemptRow, attempt_id)
        job = session.get(JobRow, attempt.job_id) if attempt is not None else None
        if attempt is None or job is None or attempt.ended_at is not None:
            return
        latest = job.attempt_count == attempt.number
        retention = _retention(work.session, attempt)
        last_known = attempt.last_seen_at or attempt.submitted_at or attempt.created_at
        if now - last_known >= retention:
            attempt.status = AttemptState.LOST
            attempt.ended_at = now
            attempt.error_text = f"the node's record of transfer {remote_id} expired"
            if latest:
                move(
                    work,
                    job.id,
                    MAY_HOLD_TRANSFER,
                    JobState.NEEDS_ATTENTION,
                    f"record expired on the node: transfer {remote_id} was last seen "
                    f"{_ago(now - last_known)} ago and the node keeps records for "
                    f"{_ago(retention)}; its end state was never read",
                    at=now,
                    values={
                        "reason": f"record expired on the node: the end state of transfer "
                        f"{remote_id} was never read; check the destination, then retry "
                        "or cancel",
                        "next_attempt_at": None,
                    },
                )
            work.commit()
            return
        if attempt.missing_since is None:
            attempt.missing_since = now
            attempt.unsettled_checks = 0
            attempt.check_after = now + _missing_delay(ctx, 0)
            note_attempt(
                work,
                attempt,
                f"the source node does not know transfer {remote_id}; a new attempt follows "
                f"if it does not reappear within {lost_after.total_seconds():.0f} s",
                now=now,
            )
            work.commit()
            return
        if now - attempt.missing_since < lost_after:
            attempt.unsettled_checks += 1
            deadline = attempt.missing_since + lost_after
            attempt.check_after = min(deadline, now + _missing_delay(ctx, attempt.unsettled_checks))
            work.commit()
            return
        attempt.status = AttemptState.LOST
        attempt.ended_at = now
        attempt.error_text = f"the node no longer knows transfer {remote_id}"
        if latest:
            move(
                work,
                job.id,
                MAY_HOLD_TRANSFER - {JobState.SUBMITTING},
                JobState.RETRY_WAIT,
                f"transfer {remote_id} is unknown to the source node (node history lost); "
                "a new attempt will resume it",
                at=now,
                values={"next_attempt_at": now + retry_delay(ctx.settings, 1)},
            )
        work.commit()


def _missing_delay(ctx: ServiceContext, checks: int) -> timedelta:
    """A transfer the node does not know is asked about less and less often."""
    longest = max(ctx.settings.poll_interval, ctx.settings.lost_after_seconds / 4)
    return timedelta(seconds=min(ctx.settings.poll_interval * 2**checks, longest))


def _retention(session: Session, attempt: AttemptRow) -> timedelta:
    """How long the source node keeps transfer records."""
    node = session.get(NodeRow, attempt.source_node_id)
    return timedelta(seconds=node.activity_retention_seconds if node else DEFAULT_RETENTION)


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 7200:
        return f"{seconds // 3600} h"
    if seconds >= 120:
        return f"{seconds // 60} min"
    return f"{seconds} s"
