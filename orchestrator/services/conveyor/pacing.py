"""Adaptive polling: each source node's next poll, planned after a poll and claimed by the tick.

After each poll the node's open transfers decide when it is read next (``domain.pacing``), kept
in ``node_cursors.next_poll_at``. A frequent tick claims the nodes whose time has come with one
UPDATE … RETURNING (pushing their time one base interval on, so a lost message costs one
interval) and sends their polls. At each base interval, nodes whose open transfers the plan has
not seen yet (a first transfer, or new ones since the last poll) are brought forward.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from orchestrator.db.engine import upsert
from orchestrator.db.tables import AttemptRow, JobRow, NodeCursorRow, NodeRow
from orchestrator.domain.pacing import OpenTransfer, Pace, gathered_end, next_poll_in
from orchestrator.domain.states import MAY_HOLD_TRANSFER, AttemptState
from orchestrator.services.context import ServiceContext
from orchestrator.settings import Settings
from orchestrator.taskqueue import TaskName

# A tick sent for a planned time runs this much after it, so that it finds the node due.
TICK_MARGIN_SECONDS = 0.005
# Ticks are sent only for polls planned within this many floors: beat's tick (every half
# floor) is up to a quarter late for those; for later ones it is a small share, not worth a
# message per poll on many nodes.
TICK_WITHIN_FLOORS = 2.0


def pace_of(settings: Settings) -> Pace:
    """The rule's bounds from the settings (the floor never above the base interval)."""
    base = settings.poll_interval
    return Pace(
        base=base,
        floor=min(settings.poll_floor_seconds, base),
        ceiling=base * settings.poll_ceiling_intervals,
    )


@dataclass(frozen=True)
class Seen:
    """A transfer's counters as this poll's feed gave them (the database's may be older)."""

    bytes_transferred: int
    bytes_expected: int | None
    rate_kbps: float | None
    at: datetime


# A node's open transfers as the plan reads them, built once (bound per poll).
_OPEN = (
    select(
        AttemptRow.id,
        AttemptRow.status,
        AttemptRow.bytes_transferred,
        AttemptRow.bytes_expected,
        AttemptRow.rate_kbps,
        AttemptRow.last_seen_at,
        AttemptRow.check_after,
        AttemptRow.submitted_at,
        JobRow.cancel_requested,
        JobRow.bytes_expected.label("job_bytes"),
        JobRow.options,
    )
    .join(JobRow, JobRow.id == AttemptRow.job_id)
    .where(
        AttemptRow.source_node_id == bindparam("node"),
        AttemptRow.ended_at.is_(None),
        JobRow.state.in_(MAY_HOLD_TRANSFER),
    )
)


def plan_next_poll(
    ctx: ServiceContext, node_id: int, *, failed: bool, seen: Mapping[str, Seen] | None = None
) -> datetime | None:
    """When to poll the node next, from its open transfers; None when it holds none.

    ``seen`` holds what this poll read, by attempt id: byte counts are written at most every
    ORCH_PROGRESS_SECONDS, so the rows alone would predict from counters seconds old.
    """
    now = ctx.now()
    pace = pace_of(ctx.settings)
    if failed:  # the node did not answer: try again after one interval, as fixed polling does
        return now + timedelta(seconds=pace.base)
    with ctx.autocommit() as session:
        rows = session.execute(_OPEN, {"node": node_id}).all()
    if not rows:
        return None
    seen = seen or {}
    transfers = []
    for row in rows:
        fresh = seen.get(row.id)
        counters = (
            Seen(row.bytes_transferred or 0, row.bytes_expected, row.rate_kbps, row.last_seen_at)
            if fresh is None
            else fresh
        )
        status = row.status
        if (
            fresh is None
            and row.last_seen_at is None
            and (asked := _asked(row.submitted_at, row.job_bytes, row.options, now)) is not None
        ):
            # Posted, not in the feed yet: planned as expect_ends planned it; one that should
            # have ended already is read at the floor (the first poll that lists it, in any
            # status, plans it from the node's own counters from then on).
            status, counters = AttemptState.RUNNING, asked
        transfers.append(
            OpenTransfer(
                status=status,
                bytes_transferred=counters.bytes_transferred,
                bytes_expected=counters.bytes_expected,
                rate_kbps=counters.rate_kbps,
                seen_ago=(now - counters.at).total_seconds() if counters.at else 0.0,
                check_in=(row.check_after - now).total_seconds() if row.check_after else None,
                stopping=bool(row.cancel_requested),
            )
        )
    return now + timedelta(seconds=next_poll_in(transfers, pace))


def _asked(
    submitted_at: datetime | None, size: int | None, options: dict[str, Any] | None, now: datetime
) -> Seen | None:
    """A posted transfer's counters from its job: none moved yet, the size the source check
    found, the rate the job asked for, read no earlier than its expected end would allow (an
    end already past is due now); None when either is unknown."""
    rate = (options or {}).get("target_rate_kbps")
    if submitted_at is None or size is None:
        return None
    if not isinstance(rate, int | float) or rate <= 0:
        return None
    if submitted_at + timedelta(seconds=size * 8 / (rate * 1000)) <= now:
        return Seen(size, size, float(rate), now)  # nothing left: due now
    return Seen(0, size, float(rate), submitted_at)


def claim_due(ctx: ServiceContext) -> list[tuple[int, str]]:
    """Nodes (id, name) whose next poll has come and that no poller holds, claimed for one."""
    now = ctx.now()
    due = (
        NodeCursorRow.next_poll_at <= now,
        or_(NodeCursorRow.lease_until.is_(None), NodeCursorRow.lease_until < now),
    )
    with ctx.sessions() as session:
        # Most ticks find nothing due: read first, so they take no write lock (SQLite).
        if session.scalars(select(NodeCursorRow.node_id).where(*due).limit(1)).first() is None:
            return []
        ids = session.scalars(
            update(NodeCursorRow)
            .where(*due)
            .values(next_poll_at=now + timedelta(seconds=ctx.settings.poll_interval))
            .returning(NodeCursorRow.node_id)
        ).all()
        session.commit()
        if not ids:
            return []
        rows = session.execute(
            select(NodeRow.id, NodeRow.name).where(NodeRow.id.in_(ids)).order_by(NodeRow.id)
        ).all()
    return [(int(row[0]), str(row[1])) for row in rows]


def bring_forward_unplanned(ctx: ServiceContext) -> int:
    """Nodes whose open transfers are not all in their plan: due within one base interval.

    A node never planned (or planned empty) is due now; one with transfers posted since its
    last poll began, one interval after the first of them (when the node is planned within a
    floor after that anyway, that poll reads them). Returns how many nodes were moved.
    """
    now = ctx.now()
    base = timedelta(seconds=ctx.settings.poll_interval)
    floor = timedelta(seconds=pace_of(ctx.settings).floor)
    # Posted, or still being posted: a POST answered after a poll began is not in its feed.
    posted = func.coalesce(AttemptRow.submitted_at, AttemptRow.created_at)
    unseen = case((posted > NodeCursorRow.last_poll_at, posted))
    with ctx.sessions() as session:
        rows = session.execute(
            select(
                AttemptRow.source_node_id,
                func.min(unseen),
                NodeCursorRow.node_id,
                NodeCursorRow.next_poll_at,
                NodeCursorRow.last_poll_at,
            )
            .join(JobRow, JobRow.id == AttemptRow.job_id)
            .outerjoin(NodeCursorRow, NodeCursorRow.node_id == AttemptRow.source_node_id)
            .where(AttemptRow.ended_at.is_(None), JobRow.state.in_(MAY_HOLD_TRANSFER))
            .group_by(
                AttemptRow.source_node_id,
                NodeCursorRow.node_id,
                NodeCursorRow.next_poll_at,
                NodeCursorRow.last_poll_at,
            )
        ).all()
        moved = 0
        soon: list[datetime] = []
        for node_id, first_unseen, cursor, next_at, last_poll in rows:
            if cursor is None:
                session.add(NodeCursorRow(node_id=node_id, next_poll_at=now))
                moved += 1
                continue
            if next_at is None or last_poll is None:
                wanted = now
            elif first_unseen is not None and next_at > first_unseen + base + floor:
                wanted = first_unseen + base
                soon.append(wanted)
            else:
                continue
            if next_at is None or next_at > wanted:
                session.execute(
                    update(NodeCursorRow)
                    .where(
                        NodeCursorRow.node_id == node_id,
                        or_(
                            NodeCursorRow.next_poll_at.is_(None),
                            NodeCursorRow.next_poll_at > wanted,
                        ),
                    )
                    .values(next_poll_at=wanted)
                )
                moved += 1
        try:
            session.commit()
        except IntegrityError:  # a poll made the cursor row meanwhile: it plans the node
            session.rollback()
            soon = []
    for at in soon:  # ticks within GATHER_LATE_SECONDS of each other go as one
        tick_when_due(ctx, at)
    return moved


def poll_soon(ctx: ServiceContext, node_id: int) -> None:
    """Read the node's feed now (we just asked it to change a transfer): a tick is sent."""
    if ctx.settings.poll_mode != "adaptive":
        return
    now = ctx.now()
    with ctx.sessions() as session:
        session.execute(
            update(NodeCursorRow)
            .where(
                NodeCursorRow.node_id == node_id,
                or_(NodeCursorRow.next_poll_at.is_(None), NodeCursorRow.next_poll_at > now),
            )
            .values(next_poll_at=now)
        )
        session.commit()
    tick_when_due(ctx, now)


def expect_ends(ctx: ServiceContext, ends: Mapping[int, list[float]]) -> None:
    """Transfers just posted, by node: seconds until each should end (its size at the rate the
    job asked for). Their node is read then, not one base interval after its last poll, and
    never sooner than the floor after that poll; a transfer slower than asked is seen running
    by that poll and planned from the node's own rate from then on."""
    if ctx.settings.poll_mode != "adaptive" or not ends:
        return
    now = ctx.now()
    floor = pace_of(ctx.settings).floor
    with ctx.sessions() as session:
        cursors = dict(
            session.execute(
                select(NodeCursorRow.node_id, NodeCursorRow.last_poll_at).where(
                    NodeCursorRow.node_id.in_(list(ends))
                )
            ).all()
        )
        planned: list[datetime] = []
        for node_id in ends:
            end = gathered_end(ends[node_id], floor)
            if end is None:
                continue
            if node_id not in cursors:  # never polled: its first poll is planned here too
                session.execute(
                    upsert(session)(NodeCursorRow)
                    .values(node_id=node_id)
                    .on_conflict_do_nothing(index_elements=["node_id"])
                )
            last_poll = cursors.get(node_id)
            wanted = now + timedelta(seconds=max(0.0, end))
            if last_poll is not None:
                wanted = max(wanted, last_poll + timedelta(seconds=floor))
            planned.append(wanted)
            session.execute(
                update(NodeCursorRow)
                .where(
                    NodeCursorRow.node_id == node_id,
                    or_(
                        NodeCursorRow.next_poll_at.is_(None),
                        NodeCursorRow.next_poll_at > wanted,
                    ),
                )
                .values(next_poll_at=wanted)
            )
        session.commit()
    for at in planned:  # ticks within GATHER_LATE_SECONDS of each other go as one
        tick_when_due(ctx, at)


def tick_when_due(ctx: ServiceContext, at: datetime | None) -> None:
    """Send adaptive polling's tick for a node's poll planned soon (TICK_WITHIN_FLOORS), so
    that it is claimed then, not at the first beat tick after (up to half a floor later: a
    slot freed by a short transfer idles meanwhile). Beat's ticks still back it up."""
    if at is None or ctx.settings.poll_mode != "adaptive":
        return
    delay = (at - ctx.now()).total_seconds()
    if delay <= TICK_WITHIN_FLOORS * pace_of(ctx.settings).floor:
        ctx.enqueue(TaskName.POLL_DUE, countdown=round(max(0.0, delay) + TICK_MARGIN_SECONDS, 3))
