"""poll_node: one source node's change feed into the database, page by page (DESIGN.md rule 3).

Each page's attempt updates and the cursor after it commit in one transaction, so a crash
re-reads a page and never skips one. A lease on the cursor row keeps two pollers of one node
apart. A rejected cursor resynchronises: the feed is read again from shortly before the last
good poll, and whatever it does not mention is confirmed by id (``confirm``), as are transfers
the feed has not mentioned for a while.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, Literal

from sqlalchemy import bindparam, case, func, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Update

from orchestrator.db.base import UtcDateTime
from orchestrator.db.engine import rowcount
from orchestrator.db.tables import (
    DISPATCH_LOCK,
    AttemptRow,
    JobRow,
    NodeCursorRow,
    NodeRow,
    ServiceLockRow,
)
from orchestrator.domain.states import MAY_HOLD_TRANSFER, JobState
from orchestrator.domain.transfers import TAG_KEY, TransferSnapshot
from orchestrator.errors import (
    ActivityLoggingDisabled,
    InvalidIterationToken,
    NodeConfigurationError,
    NodeError,
)
from orchestrator.nodeapi.client import NodeClient
from orchestrator.services.context import ServiceContext, UnitOfWork
from orchestrator.services.conveyor import allocation, confirm, pacing
from orchestrator.services.conveyor.completions import PageCompletions
from orchestrator.services.conveyor.confirm import mark_unconfirmed
from orchestrator.services.conveyor.finisher import apply_snapshot, note_attempt, progress_only
from orchestrator.taskqueue import PERIODIC_EXPIRY_INTERVALS, TaskName, countdown_after

log = logging.getLogger(__name__)

RESYNC_MARGIN_SECONDS = 300.0  # read back this far before the last good poll (clock skew)
ENDED_LISTED = 10  # job ids named in a poll's result
GATHER_SHARE = 0.1  # dispatch waits at most this share of the quickest transfer that ended
MIN_GATHER_SECONDS = 0.05  # a shorter wait is no wait


@dataclass
class PollSummary:
    """What one poll of one node did, in numbers an operator reads."""

    node_id: int
    node: str = ""
    pages: int = 0
    seen: int = 0
    changed: int = 0
    completed: int = 0
    failed: int = 0
    checked: int = 0
    resynced: bool = False
    next_in: float | None = None  # adaptive polling: seconds until the node's next poll
    rates_sent: int = 0  # link budgets: rate changes, pauses and resumes sent to the node
    skipped: str | None = None
    error: str | None = None
    moved: dict[str, int] = field(default_factory=dict)
    ended: list[str] = field(default_factory=list)  # "job <id> <state>", for Flower's search
    seen_now: dict[str, pacing.Seen] = field(default_factory=dict)  # open transfers' counters
    shortest_run: float | None = None  # seconds: the quickest transfer this poll saw end

    def __str__(self) -> str:
        name = self.node or f"#{self.node_id}"
        if self.skipped:
            return f"node {name}: skipped ({self.skipped})"
        text = (
            f"node {name}: {self.seen} transfer(s) seen, {self.changed} changed, "
            f"{self.completed} completed, {self.failed} failed ({self.pages} feed page(s)"
        )
        text += f", {self.checked} checked by id)" if self.checked else ")"
        if self.resynced:
            text += "; cursor resynchronised"
        if self.rates_sent:
            text += f"; {self.rates_sent} rate change(s) sent"
        if self.next_in is not None:
            text += f"; next poll in {self.next_in:.1f} s"
        if self.error:
            text += f"; error: {self.error}"
        if self.ended:
            more = len(self.ended) - ENDED_LISTED
            text += "; " + ", ".join(self.ended[:ENDED_LISTED])
            text += f" and {more} more" if more > 0 else ""
        return text


def poll_node(ctx: ServiceContext, node_id: int, owner: str) -> PollSummary:
    """Read the node's feed from the saved cursor until caught up; then the slow checks."""
    summary = PollSummary(node_id)
    started = ctx.now()
    held, token, since, allocates = _take_lease(ctx, node_id, owner)
    if not held:
        summary.skipped = "another poller holds this node"
        return summary
    try:
        client = ctx.clients.get(node_id)
    except NodeConfigurationError as exc:  # e.g. its CA bundle: kept as the node's last error
        summary.node, summary.error = exc.node, str(exc)
        _release_lease(ctx, node_id, owner, summary.error)
        log.warning("poll of node %s: %s", exc.node, summary.error, extra={"node": exc.node})
        return summary
    summary.node = client.node
    try:
        _read(ctx, client, node_id, owner, token, since, summary)
    except Exception as exc:
        # E.g. a deadlock the database broke by rolling this page back: the task's retry
        # (or the next tick) reads the node again at once, not when the lease runs out.
        _let_go(ctx, node_id, owner, summary, f"poll failed: {type(exc).__name__}")
        raise
    clean = not summary.skipped and not summary.error
    if allocates and clean and _renew_lease(ctx, node_id, owner):
        # Under the node's lease, renewed after the by-id checks (which may have been slow):
        # one allocation at a time for the transfers it runs. Only a node with a budgeted link
        # or a transfer the allocator touched, as read when the lease was taken (nothing in
        # the poll itself makes either; one made meanwhile is shared at the next poll).
        summary.rates_sent = allocation.rebalance(ctx, node_id).sent
    summary.next_in = _release_lease(
        ctx,
        node_id,
        owner,
        summary.error,
        started=started,
        planned=not summary.skipped,
        seen=summary.seen_now,
        rerated=summary.rates_sent > 0,
    )
    if summary.error:
        log.warning("poll of node %s: %s", client.node, summary.error, extra={"node": client.node})
    if summary.moved.keys() - {JobState.RUNNING.value, JobState.PAUSED.value}:
        _wake_dispatch(ctx, node_id, summary.shortest_run)
    return summary


def _read(
    ctx: ServiceContext,
    client: NodeClient,
    node_id: int,
    owner: str,
    token: str | None,
    since: datetime | None,
    summary: PollSummary,
) -> None:
    """The feed from the saved cursor (or a resync), then the checks by id; a node's failure
    is kept in the summary."""
    try:
        _follow_feed(ctx, client, node_id, owner, token, summary)
    except InvalidIterationToken:
        _resync(ctx, client, node_id, owner, since, summary)
        _confirm(ctx, client, node_id, summary, unseen_for=ctx.settings.unseen_check_seconds)
    except ActivityLoggingDisabled as exc:
        summary.error = f"{exc}; falling back to one GET per transfer"
        _confirm(ctx, client, node_id, summary, unseen_for=0.0)
    except NodeError as exc:
        summary.error = str(exc)
    else:
        _confirm(ctx, client, node_id, summary, unseen_for=ctx.settings.unseen_check_seconds)


def _let_go(
    ctx: ServiceContext, node_id: int, owner: str, summary: PollSummary, error: str
) -> None:
    """After a poll failed: release its lease and wake dispatch for the ends its committed
    pages freed (the retry reads on from them), as far as the database lets us."""
    try:
        _release_lease(ctx, node_id, owner, error, planned=False)
        if summary.moved.keys() - {JobState.RUNNING.value, JobState.PAUSED.value}:
            _wake_dispatch(ctx, node_id, summary.shortest_run)
    except Exception as exc:  # the database is down: the lease runs out, the sweeper wakes
        log.warning("poll of node %d: lease left to expire (%s)", node_id, type(exc).__name__)


def _wake_dispatch(ctx: ServiceContext, node_id: int, shortest_run: float | None) -> None:
    """Slots were freed: admit what waits a moment later, so that the ends of transfers that
    started together (read by the next poll or two) make one submit batch, not several.

    A freed slot idles meanwhile, so the wait is at most GATHER_SHARE of the quickest transfer
    that just ended: short transfers are followed at once (unless a gathering is under way).
    When a second poll of the node can land within that wait, the node's slots are held until
    then whoever runs dispatch meanwhile (gather_slots): a run woken by another node's poll
    would otherwise send the first few ends alone, and they would stay a cohort of their own,
    ending apart, wave after wave. (A short countdown, far below the broker's visibility
    timeout: DESIGN.md rule 4 is about long ones.)
    """
    gather = ctx.settings.dispatch_gather_seconds
    if shortest_run is not None:
        gather = min(gather, GATHER_SHARE * shortest_run)
    if gather < MIN_GATHER_SECONDS:
        ctx.enqueue(TaskName.DISPATCH)
        return
    wait = gather
    # Held only when a second poll of this node can read more ends meanwhile; otherwise
    # whoever runs dispatch first admits all these together.
    if gather >= _closest_polls(ctx):
        now = ctx.now()
        until = gather_slots(ctx, node_id, gather)
        wait = gather if until is None else (until - now).total_seconds()
    ctx.enqueue(TaskName.DISPATCH, countdown=countdown_after(wait))


def _closest_polls(ctx: ServiceContext) -> float:
    """The shortest time between two polls of one node: the floor, or the fixed interval."""
    if ctx.settings.poll_mode == "adaptive":
        return pacing.pace_of(ctx.settings).floor
    return ctx.settings.poll_interval


def gather_slots(ctx: ServiceContext, node_id: int, seconds: float) -> datetime | None:
    """Hold the node's freed slots ``seconds`` from now, for one submit batch; returns until
    when (None: the node has no cursor row). A gathering still ahead is kept, and so is one
    that ended with no dispatch run since (that run is late, not missed: a new gathering
    would hold it again, poll after poll, while the node keeps ending transfers)."""
    now = ctx.now()
    dispatched_at = (
        select(ServiceLockRow.taken_at)
        .where(ServiceLockRow.name == DISPATCH_LOCK)
        .scalar_subquery()
    )
    never = literal(datetime(1970, 1, 1, tzinfo=UTC), UtcDateTime())
    kept = or_(
        NodeCursorRow.gather_until > now,
        NodeCursorRow.gather_until > func.coalesce(dispatched_at, never),
    )
    with ctx.autocommit() as session:
        until: datetime | None = session.execute(
            update(NodeCursorRow)
            .where(NodeCursorRow.node_id == node_id)
            .values(
                gather_until=case(
                    (kept, NodeCursorRow.gather_until),
                    else_=literal(now + timedelta(seconds=seconds), UtcDateTime()),
                )
            )
            .returning(NodeCursorRow.gather_until)
            .execution_options(synchronize_session=False)
        ).scalar()
    return until


def _take_lease(
    ctx: ServiceContext, node_id: int, owner: str
) -> tuple[bool, str | None, datetime | None, bool]:
    """Whether this poller now holds the node's lease, the saved token, the last good poll,
    and whether an allocation after the poll could do anything (``allocation.wanted``)."""
    now = ctx.now()
    until = now + timedelta(seconds=ctx.settings.poll_lease_seconds)
    bound = {"node": node_id, "owner": owner, "now": now, "until": until}
    with ctx.autocommit() as session:
        for _ in range(2):  # the node's first poll makes its cursor row, then takes it
            taken = session.execute(_TAKE, bound).first()
            if taken is not None:
                session.commit()
                return True, taken.iteration_token, taken.last_success_at, taken.allocates
            if session.get(NodeCursorRow, node_id) is not None:
                break  # another poller holds it
            session.add(NodeCursorRow(node_id=node_id))
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
        session.rollback()
        return False, None, None, False


def _renew_lease(ctx: ServiceContext, node_id: int, owner: str) -> bool:
    """Extend this poller's lease on the node for one more lease time; False if it was lost."""
    with ctx.autocommit() as session:
        return _still_holding(session, node_id, owner, ctx.now(), ctx.settings.poll_lease_seconds)


def _still_holding(session: Session, node_id: int, owner: str, now: datetime, ttl: float) -> bool:
    """Extend the lease inside the page's transaction; False if another poller took it."""
    until = now + timedelta(seconds=ttl)
    result = session.execute(_RENEW, {"node": node_id, "owner": owner, "until": until})
    return rowcount(result) == 1


# The statements of every poll, built once (each binds its values).
_TAKE = (
    update(NodeCursorRow)
    .where(
        NodeCursorRow.node_id == bindparam("node"),
        or_(
            NodeCursorRow.lease_until.is_(None),
            NodeCursorRow.lease_until < bindparam("now"),
            NodeCursorRow.lease_owner == bindparam("owner"),
        ),
    )
    .values(
        lease_owner=bindparam("owner"),
        lease_until=bindparam("until"),
        last_poll_at=bindparam("now"),
    )
    .returning(
        NodeCursorRow.iteration_token,
        NodeCursorRow.last_success_at,
        allocation.wanted(bindparam("node")).label("allocates"),
    )
    .execution_options(synchronize_session=False)
)
_RENEW = (
    update(NodeCursorRow)
    .where(
        NodeCursorRow.node_id == bindparam("node"),
        NodeCursorRow.lease_owner == bindparam("owner"),
    )
    .values(lease_until=bindparam("until"))
    .execution_options(synchronize_session=False)
)
_ADVANCE = (
    update(NodeCursorRow)
    .where(NodeCursorRow.node_id == bindparam("node"))
    .values(
        iteration_token=bindparam("token"),
        last_success_at=bindparam("now"),
        lag_seconds=0.0,
        last_error=None,
    )
    .execution_options(synchronize_session=False)
)


def _follow_feed(
    ctx: ServiceContext,
    client: NodeClient,
    node_id: int,
    owner: str,
    token: str | None,
    summary: PollSummary,
    *,
    after_time: datetime | None = None,
) -> None:
    for page in client.iter_transfer_pages(
        token,
        tag=TAG_KEY,
        view="summary",
        count=ctx.settings.feed_page_size,
        after_time=after_time,
        max_pages=50,
    ):
        now = ctx.now()
        with ctx.unit_of_work() as work:
            session = work.session
            if not _still_holding(session, node_id, owner, now, ctx.settings.poll_lease_seconds):
                work.rollback()
                summary.skipped = "lease lost to another poller"
                return
            _apply_page(ctx, work, node_id, page.transfers, now, summary)
            session.execute(_ADVANCE, {"node": node_id, "token": page.next_token, "now": now})
            work.commit()
        summary.pages += 1


def _apply_page(
    ctx: ServiceContext,
    work: UnitOfWork,
    node_id: int,
    transfers: tuple[TransferSnapshot, ...],
    now: datetime,
    summary: PollSummary,
) -> None:
    """Match each transfer to its attempt (by remote id, else by tag) and apply it."""
    if not transfers:
        return
    session = work.session
    remote_ids = [t.remote_id for t in transfers]
    tagged = [str(t.tag(TAG_KEY)) for t in transfers if t.tag(TAG_KEY)]
    mine = (
        AttemptRow.source_node_id == node_id,
        or_(AttemptRow.remote_id.in_(remote_ids), AttemptRow.id.in_(tagged)),
    )
    # The page's jobs are held while it is applied: the identity map keeps only rows something
    # refers to, and apply_snapshot's get() must find them there. A page where a transfer
    # ended writes to most of its jobs: they come with their attempts, in one query.
    # The page's attempts are locked as they are read, in id order, before any job: a submit's
    # record locks its attempts the same way first, so the two wait for each other rather
    # than deadlock (PostgreSQL; SQLite has one writer).
    jobs: Sequence[JobRow] = []
    if any(t.status.is_terminal for t in transfers):
        pairs = session.execute(
            select(AttemptRow, JobRow)
            .join(JobRow, JobRow.id == AttemptRow.job_id)
            .where(*mine)
            .order_by(AttemptRow.id)
            .with_for_update(of=AttemptRow)
        ).all()
        rows, jobs = [pair[0] for pair in pairs], [pair[1] for pair in pairs]
    else:
        rows = list(
            session.scalars(
                select(AttemptRow).where(*mine).order_by(AttemptRow.id).with_for_update()
            )
        )
    by_remote = {r.remote_id: r for r in rows if r.remote_id}
    by_id = {r.id: r for r in rows}
    matched = [
        (transfer, by_remote.get(transfer.remote_id) or by_id.get(str(transfer.tag(TAG_KEY))))
        for transfer in transfers
    ]
    if not jobs:
        # Otherwise the jobs this page writes to, in one query; a transfer whose counters
        # alone moved, written not long ago, needs no job.
        written = {
            attempt.job_id
            for transfer, attempt in matched
            if attempt is not None and not progress_only(attempt, transfer, now, ctx.settings)
        }
        if written:
            jobs = session.scalars(select(JobRow).where(JobRow.id.in_(written))).all()
    ends = PageCompletions()  # plain completions: one UPDATE and one INSERT for the page
    for transfer, attempt in matched:
        if attempt is None:
            continue
        if attempt.remote_id not in (None, transfer.remote_id):
            note_attempt(
                work,
                attempt,
                f"another transfer {transfer.remote_id} carries this attempt's tag; ignored",
                now=now,
            )
            continue
        summary.seen += 1
        before = (attempt.status, attempt.bytes_transferred, attempt.files_completed)
        moved = apply_snapshot(work, attempt, transfer, now=now, settings=ctx.settings, ends=ends)
        if not transfer.status.is_terminal:
            summary.seen_now[attempt.id] = pacing.Seen(
                transfer.bytes_transferred, transfer.bytes_expected, transfer.rate_kbps, now
            )
        after = (attempt.status, attempt.bytes_transferred, attempt.files_completed)
        if before != after:
            summary.changed += 1
        if moved is not None:
            _count_move(summary, attempt, moved)
    for attempt in ends.move(work, now):
        _count_move(summary, attempt, JobState.COMPLETED)
    del jobs


def _count_move(summary: PollSummary, attempt: AttemptRow, moved: JobState) -> None:
    """A job the page moved, told in the poll's summary (with the quickest transfer ended)."""
    _note_move(summary, attempt, moved)
    if attempt.ended_at is not None and attempt.started_at is not None:
        run = (attempt.ended_at - attempt.started_at).total_seconds()
        if summary.shortest_run is None or run < summary.shortest_run:
            summary.shortest_run = run
    summary.moved[moved.value] = summary.moved.get(moved.value, 0) + 1
    if moved is JobState.COMPLETED:
        summary.completed += 1
    elif moved in (JobState.FAILED, JobState.NEEDS_ATTENTION, JobState.RETRY_WAIT):
        summary.failed += 1


def _note_move(summary: PollSummary, attempt: AttemptRow, moved: JobState) -> None:
    """A job ended or needs a retry: one log line, and its id in the poll's result."""
    if moved in (JobState.RUNNING, JobState.PAUSED):
        return
    summary.ended.append(f"job {attempt.job_id} {moved.value}")
    why = f": {attempt.error_text}" if attempt.error_text and moved != JobState.COMPLETED else ""
    log.info(
        "job %s %s (node transfer %s)%s",
        attempt.job_id,
        moved.value,
        attempt.remote_id,
        why,
        extra={"job_id": attempt.job_id, "node": summary.node, "attempt": attempt.number},
    )


def _resync(
    ctx: ServiceContext,
    client: NodeClient,
    node_id: int,
    owner: str,
    since: datetime | None,
    summary: PollSummary,
) -> None:
    """The node rejected our cursor (it restarted or lost history): start over safely.

    Read the feed again from a little before the last good poll (``after_time``, so transfers
    that ended meanwhile are found, whatever their status), keeping the new cursor; then every
    open transfer that this read did not mention is asked about by id until the node answers
    with a status.
    """
    summary.resynced = True
    started = ctx.now()
    margin = timedelta(seconds=max(RESYNC_MARGIN_SECONDS, 5 * ctx.settings.poll_interval))
    try:
        _follow_feed(
            ctx, client, node_id, owner, None, summary, after_time=since - margin if since else None
        )
    except NodeError as exc:
        summary.error = f"resync failed: {exc}"
    mark_unconfirmed(ctx, node_id, not_seen_since=started)


def _confirm(
    ctx: ServiceContext,
    client: NodeClient,
    node_id: int,
    summary: PollSummary,
    *,
    unseen_for: float,
) -> None:
    """The by-id checks of this poll, told in the poll's summary."""
    checked = confirm.check_by_id(ctx, client, node_id, unseen_for=timedelta(seconds=unseen_for))
    summary.checked += checked.asked
    if checked.error:
        summary.error = checked.error
    for attempt, moved in checked.moved:
        _count_move(summary, attempt, moved)


def _release_lease(
    ctx: ServiceContext,
    node_id: int,
    owner: str,
    error: str | None,
    *,
    planned: bool = True,
    seen: dict[str, pacing.Seen] | None = None,
    rerated: bool = False,
    started: datetime | None = None,
) -> float | None:
    """Let the node go; with adaptive polling, say when it is read next (seconds from now).
    After rate changes (``rerated``) within one base interval: the ends the plan predicts
    from the rates just read have moved."""
    bound: dict[str, object] = {"node": node_id, "owner": owner}
    if error:
        bound["error"] = error[:2000]
    next_in: float | None = None
    plan: _Plan = "none"
    if planned and ctx.settings.poll_mode == "adaptive":
        at = pacing.plan_next_poll(ctx, node_id, failed=error is not None, seen=seen)
        now = ctx.now()
        if rerated:
            soon = now + timedelta(seconds=ctx.settings.poll_interval)
            at = soon if at is None else min(at, soon)
        bound["at"] = at
        plan = "at"
        if started is not None:
            bound["now"] = now
            bound["asked_after"] = started + timedelta(seconds=ctx.settings.poll_interval)
            plan = "unless_asked"
        next_in = (at - now).total_seconds() if at else None
    with ctx.autocommit() as session:
        written = session.execute(_release_statement(error is not None, plan), bound).scalar()
    if plan != "none":  # the time written: the plan's, or now when a poll was asked meanwhile
        pacing.tick_when_due(ctx, written)
    return next_in


_Plan = Literal["none", "at", "unless_asked"]  # what the release writes of the next poll


@cache
def _release_statement(with_error: bool, plan: _Plan) -> Update:
    """The lease's release, built once per shape: the error kept, and the next poll's time
    ("at"; "unless_asked": the planned time, unless a poll was asked for while this one ran
    (``poll_soon`` after a pause, a resume or a rate change; the tick does not claim a node
    whose lease is held, and a claim made meanwhile sets a time more than one interval after
    this poll began): then now, so the next tick reads the node)."""
    values: dict[str, Any] = {"lease_until": None, "lease_owner": None}
    if with_error:
        values["last_error"] = bindparam("error")
    at = bindparam("at", type_=UtcDateTime())
    if plan == "at":
        values["next_poll_at"] = at
    elif plan == "unless_asked":
        now = bindparam("now", type_=UtcDateTime())
        asked = or_(
            NodeCursorRow.next_poll_at <= now,
            NodeCursorRow.next_poll_at > bindparam("asked_after", type_=UtcDateTime()),
        )
        values["next_poll_at"] = case((asked, now), else_=at)
    return (
        update(NodeCursorRow)
        .where(
            NodeCursorRow.node_id == bindparam("node"),
            NodeCursorRow.lease_owner == bindparam("owner"),
        )
        .values(values)
        .returning(NodeCursorRow.next_poll_at)
        .execution_options(synchronize_session=False)
    )


def source_nodes_to_poll(ctx: ServiceContext) -> list[tuple[int, str]]:
    """Source nodes (id, name) that hold transfers still to follow (or posts to confirm)."""
    with ctx.sessions() as session:
        rows = session.execute(
            select(NodeRow.id, NodeRow.name)
            .where(
                NodeRow.id.in_(
                    select(AttemptRow.source_node_id)
                    .join(JobRow, JobRow.id == AttemptRow.job_id)
                    .where(AttemptRow.ended_at.is_(None), JobRow.state.in_(MAY_HOLD_TRANSFER))
                )
            )
            .order_by(NodeRow.id)
        ).all()
    return [(int(row[0]), str(row[1])) for row in rows]


def send_polls(ctx: ServiceContext) -> str:
    """Each poll interval: one poll per source node with transfers to follow (fixed mode), or
    those whose plan says now, once nodes with unplanned transfers are brought forward."""
    if ctx.settings.poll_mode == "adaptive":
        pacing.bring_forward_unplanned(ctx)
        return send_due_polls(ctx)
    return _send(ctx, source_nodes_to_poll(ctx))


def send_due_polls(ctx: ServiceContext) -> str:
    """Adaptive polling's tick: a poll for each node whose planned time has come."""
    if ctx.settings.poll_mode != "adaptive":
        return "fixed polling: nothing to do"
    return _send(ctx, pacing.claim_due(ctx))


def _send(ctx: ServiceContext, nodes: list[tuple[int, str]]) -> str:
    """One poll task per node, each named for Flower."""
    interval = ctx.settings.poll_interval
    for node_id, name in nodes:
        ctx.enqueue(
            TaskName.POLL,
            node_id,
            expires=interval * PERIODIC_EXPIRY_INTERVALS,
            argsrepr=f"poll {name}",
        )
    return f"{len(nodes)} node poll(s) sent"
