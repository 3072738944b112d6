"""poll_node: one source node's change feed into the database, page by page (DESIGN.md rule 3).

Each page's attempt updates and the cursor after it commit in one transaction, so a crash
re-reads a page and never skips one. A lease on the cursor row keeps two pollers of one node
apart. A rejected cursor resynchronises from the active transfers plus individual checks;
transfers the feed has not mentioned for a while get a slow GET by id.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orchestrator.db.engine import rowcount
from orchestrator.db.tables import AttemptRow, JobRow, NodeCursorRow
from orchestrator.domain.states import MAY_HOLD_TRANSFER, AttemptState, JobState
from orchestrator.domain.transfers import TAG_KEY, TransferSnapshot, TransferStatus
from orchestrator.errors import (
    ActivityLoggingDisabled,
    InvalidIterationToken,
    NodeError,
    NodeNotFound,
)
from orchestrator.nodeapi.client import NodeClient
from orchestrator.services.context import ServiceContext, UnitOfWork
from orchestrator.services.conveyor.finisher import apply_snapshot, note_attempt, retry_delay
from orchestrator.services.conveyor.transitions import move
from orchestrator.taskqueue import TaskName

log = logging.getLogger(__name__)

UNSEEN_CHECKS_PER_POLL = 50
ENDED_LISTED = 10  # job ids named in a poll's result


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
    skipped: str | None = None
    error: str | None = None
    moved: dict[str, int] = field(default_factory=dict)
    ended: list[str] = field(default_factory=list)  # "job <id> <state>", for Flower's search

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
    held, token = _take_lease(ctx, node_id, owner)
    if not held:
        summary.skipped = "another poller holds this node"
        return summary
    client = ctx.clients.get(node_id)
    summary.node = client.node
    try:
        _follow_feed(ctx, client, node_id, owner, token, summary)
    except InvalidIterationToken:
        _resync(ctx, client, node_id, owner, summary)
    except ActivityLoggingDisabled as exc:
        summary.error = f"{exc}; falling back to one GET per transfer"
        _check_unseen(ctx, client, node_id, summary, older_than=timedelta(0))
    except NodeError as exc:
        summary.error = str(exc)
    else:
        _check_unseen(
            ctx,
            client,
            node_id,
            summary,
            older_than=timedelta(seconds=ctx.settings.unseen_check_seconds),
        )
    _release_lease(ctx, node_id, owner, summary.error)
    if summary.error:
        log.warning("poll of node %s: %s", client.node, summary.error, extra={"node": client.node})
    if summary.moved.keys() - {JobState.RUNNING.value, JobState.PAUSED.value}:
        ctx.enqueue(TaskName.DISPATCH)  # slots were freed: admit what waits
    return summary


def _take_lease(ctx: ServiceContext, node_id: int, owner: str) -> tuple[bool, str | None]:
    """Whether this poller now holds the node's lease, and the saved token."""
    now = ctx.now()
    until = now + timedelta(seconds=ctx.settings.poll_lease_seconds)
    with ctx.sessions() as session:
        if session.get(NodeCursorRow, node_id) is None:
            session.add(NodeCursorRow(node_id=node_id))
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
        taken = session.execute(
            update(NodeCursorRow)
            .where(
                NodeCursorRow.node_id == node_id,
                or_(
                    NodeCursorRow.lease_until.is_(None),
                    NodeCursorRow.lease_until < now,
                    NodeCursorRow.lease_owner == owner,
                ),
            )
            .values(lease_owner=owner, lease_until=until, last_poll_at=now)
            .execution_options(synchronize_session=False)
        )
        if rowcount(taken) != 1:
            session.rollback()
            return False, None
        token = session.scalar(
            select(NodeCursorRow.iteration_token).where(NodeCursorRow.node_id == node_id)
        )
        session.commit()
        return True, token


def _still_holding(session: Session, node_id: int, owner: str, now: datetime, ttl: float) -> bool:
    """Extend the lease inside the page's transaction; False if another poller took it."""
    result = session.execute(
        update(NodeCursorRow)
        .where(NodeCursorRow.node_id == node_id, NodeCursorRow.lease_owner == owner)
        .values(lease_until=now + timedelta(seconds=ttl))
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) == 1


def _follow_feed(
    ctx: ServiceContext,
    client: NodeClient,
    node_id: int,
    owner: str,
    token: str | None,
    summary: PollSummary,
) -> None:
    for page in client.iter_transfer_pages(
        token, tag=TAG_KEY, view="summary", count=ctx.settings.feed_page_size, max_pages=50
    ):
        now = ctx.now()
        with ctx.unit_of_work() as work:
            session = work.session
            if not _still_holding(session, node_id, owner, now, ctx.settings.poll_lease_seconds):
                work.rollback()
                summary.skipped = "lease lost to another poller"
                return
            _apply_page(ctx, work, node_id, page.transfers, now, summary)
            session.execute(
                update(NodeCursorRow)
                .where(NodeCursorRow.node_id == node_id)
                .values(
                    iteration_token=page.next_token,
                    last_success_at=now,
                    lag_seconds=0.0,
                    last_error=None,
                )
            )
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
    rows = session.scalars(
        select(AttemptRow).where(
            AttemptRow.source_node_id == node_id,
            or_(AttemptRow.remote_id.in_(remote_ids), AttemptRow.id.in_(tagged)),
        )
    ).all()
    by_remote = {r.remote_id: r for r in rows if r.remote_id}
    by_id = {r.id: r for r in rows}
    # Load the page's jobs in one query; apply_snapshot then finds them in the identity map.
    session.scalars(select(JobRow).where(JobRow.id.in_({r.job_id for r in rows}))).all()
    for transfer in transfers:
        attempt = by_remote.get(transfer.remote_id) or by_id.get(str(transfer.tag(TAG_KEY)))
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
        moved = apply_snapshot(work, attempt, transfer, now=now, settings=ctx.settings)
        after = (attempt.status, attempt.bytes_transferred, attempt.files_completed)
        if before != after:
            summary.changed += 1
        if moved is not None:
            _note_move(summary, attempt, moved)
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
    ctx: ServiceContext, client: NodeClient, node_id: int, owner: str, summary: PollSummary
) -> None:
    """The node rejected our cursor (it restarted or lost history): start over safely."""
    summary.resynced = True
    try:
        active = client.list_transfers(
            active_only=True, tag=TAG_KEY, view="summary", count=ctx.settings.feed_page_size
        )
    except NodeError as exc:
        summary.error = f"resync failed: {exc}"
        return
    now = ctx.now()
    with ctx.unit_of_work() as work:
        if not _still_holding(work.session, node_id, owner, now, ctx.settings.poll_lease_seconds):
            work.rollback()
            return
        _apply_page(ctx, work, node_id, active.transfers, now, summary)
        work.session.execute(
            update(NodeCursorRow)
            .where(NodeCursorRow.node_id == node_id)
            .values(iteration_token=active.next_token, last_error="cursor resynchronised")
        )
        work.commit()
    # Whatever ended while we were not looking: one GET each.
    _check_unseen(ctx, client, node_id, summary, older_than=timedelta(0), before=now)


def _check_unseen(
    ctx: ServiceContext,
    client: NodeClient,
    node_id: int,
    summary: PollSummary,
    *,
    older_than: timedelta,
    before: datetime | None = None,
) -> None:
    """GET by id the open attempts the feed has not mentioned for ``older_than``."""
    now = ctx.now()
    cutoff = (before or now) - older_than
    with ctx.sessions() as session:
        stale = session.scalars(
            select(AttemptRow)
            .join(JobRow, JobRow.id == AttemptRow.job_id)
            .where(
                AttemptRow.source_node_id == node_id,
                AttemptRow.remote_id.is_not(None),
                AttemptRow.ended_at.is_(None),
                JobRow.state.in_(MAY_HOLD_TRANSFER),
                or_(AttemptRow.last_seen_at.is_(None), AttemptRow.last_seen_at < cutoff),
                or_(AttemptRow.submitted_at.is_(None), AttemptRow.submitted_at < cutoff),
            )
            .order_by(AttemptRow.last_seen_at)
            .limit(UNSEEN_CHECKS_PER_POLL)
        ).all()
        ids = [(a.id, a.remote_id) for a in stale]
    for attempt_id, remote_id in ids:
        assert remote_id is not None
        try:
            snapshot = client.get_transfer(remote_id)
        except NodeNotFound:
            _missing(ctx, attempt_id, remote_id)
            summary.checked += 1
            continue
        except NodeError as exc:
            summary.error = str(exc)
            return
        summary.checked += 1
        with ctx.unit_of_work() as work:
            attempt = work.session.get(AttemptRow, attempt_id)
            if attempt is not None:
                if snapshot.status is TransferStatus.UNKNOWN:
                    attempt.last_seen_at = ctx.now()
                else:
                    moved = apply_snapshot(
                        work, attempt, snapshot, now=ctx.now(), settings=ctx.settings
                    )
                    if moved is not None:
                        _note_move(summary, attempt, moved)
                    if moved is JobState.COMPLETED:
                        summary.completed += 1
            work.commit()


def _missing(ctx: ServiceContext, attempt_id: str, remote_id: str) -> None:
    """The node no longer knows the transfer (retention passed or history lost).

    It may still run and come back in the feed, so a new attempt waits ``lost_after_seconds``;
    then it is safe: overwrite and resume policies skip what already arrived.
    """
    now = ctx.now()
    lost_after = timedelta(seconds=ctx.settings.lost_after_seconds)
    with ctx.unit_of_work() as work:
        session = work.session
        attempt = session.get(AttemptRow, attempt_id)
        if attempt is None or attempt.ended_at is not None:
            return
        if attempt.missing_since is None:
            attempt.missing_since = now
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
            return
        attempt.status = AttemptState.LOST
        attempt.ended_at = now
        attempt.error_text = f"the node no longer knows transfer {remote_id}"
        job = session.get(JobRow, attempt.job_id)
        if job is not None and job.attempt_count == attempt.number:
            move(
                work,
                job.id,
                MAY_HOLD_TRANSFER - {JobState.SUBMITTING},
                JobState.RETRY_WAIT,
                f"transfer {remote_id} is unknown to the source node (expired or node "
                "history lost); a new attempt will resume it",
                at=now,
                values={"next_attempt_at": now + retry_delay(ctx.settings, 1)},
            )
        work.commit()


def _release_lease(ctx: ServiceContext, node_id: int, owner: str, error: str | None) -> None:
    with ctx.sessions() as session:
        values: dict[str, object] = {"lease_until": None, "lease_owner": None}
        if error:
            values["last_error"] = error[:2000]
        session.execute(
            update(NodeCursorRow)
            .where(NodeCursorRow.node_id == node_id, NodeCursorRow.lease_owner == owner)
            .values(**values)
        )
        session.commit()


def source_nodes_to_poll(ctx: ServiceContext) -> list[int]:
    """Source nodes that hold transfers still to follow (or posts still to confirm)."""
    with ctx.sessions() as session:
        rows = session.scalars(
            select(AttemptRow.source_node_id)
            .join(JobRow, JobRow.id == AttemptRow.job_id)
            .where(AttemptRow.ended_at.is_(None), JobRow.state.in_(MAY_HOLD_TRANSFER))
            .distinct()
        ).all()
    return sorted(rows)
