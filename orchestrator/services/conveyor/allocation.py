"""Live rate allocation: after each poll of a node, the links with a budget whose transfers
it runs are shared again (``domain.linkshare``) and the shares sent with PUT /ops/transfers.

It runs inside the poll, under the node's poll lease (renewed just before it, after the
poll's by-id checks), so it never runs twice at once for the transfers of one node. Every
transfer of the link counts in the sharing (a pull on the same link is run by the other node,
which applies its own part of the same sharing after its poll). A transfer hears from it at
most once per poll interval, and only when its share moves by more than a few percent, goes
to nothing (paused) or comes back (resumed). A rate is sent
first and written after, so a crash between the two repeats a PUT, which is harmless, and
never records a rate the node did not get; a pause is marked as the allocator's before it is
sent, so a transfer paused by a crash's last PUT is still the allocator's to resume.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import ColumnElement, and_, exists, or_, select, update

from orchestrator.db.tables import AttemptRow, JobRow, LinkBudgetRow
from orchestrator.domain import units
from orchestrator.domain.linkshare import Claim, Share, allocate, moved_enough
from orchestrator.domain.states import POSTED, AttemptState, JobState
from orchestrator.errors import NodeError
from orchestrator.services.context import ServiceContext
from orchestrator.services.events import record
from orchestrator.services.nodes.maintenance import calendar

log = logging.getLogger(__name__)

Link = tuple[int, int]


@dataclass(frozen=True)
class Step:
    """One change for one transfer: what to send to the node, then what to record."""

    job_id: str
    attempt_id: str
    remote_id: str
    kbps: int | None = None  # a new target rate to send
    pause: bool = False
    resume: bool = False
    release: bool = False  # the link has no budget any more: the allocator lets go of it
    event: str = ""
    note: str | None = None  # the job's reason once the node took the change

    @property
    def calls_node(self) -> bool:
        """Whether the node must be asked anything."""
        return self.pause or self.resume or self.kbps is not None


@dataclass
class Rebalance:
    """What one allocation after a poll did."""

    links: int = 0
    sent: int = 0
    failed: int = 0


def wanted(node: ColumnElement[int]) -> ColumnElement[bool]:
    """Whether an allocation after a poll of ``node`` could do anything: a budget on one of its
    links, or a transfer it runs that the allocator touched. Without either, ``rebalance``
    reads nothing to share and writes nothing, so a poll may skip it (and its lease renewal)."""
    return or_(
        exists().where(
            or_(LinkBudgetRow.source_node_id == node, LinkBudgetRow.destination_node_id == node)
        ),
        exists().where(
            AttemptRow.source_node_id == node,
            AttemptRow.ended_at.is_(None),
            AttemptRow.allocated_at.is_not(None),
        ),
    )


def rebalance(ctx: ServiceContext, node_id: int) -> Rebalance:
    """Share again each budgeted link whose transfers ``node_id`` runs, and apply its part."""
    now = ctx.now()
    done = Rebalance()
    with ctx.sessions() as session:
        budgets = {
            (row.source_node_id, row.destination_node_id): row.kbps
            for row in session.scalars(
                select(LinkBudgetRow).where(
                    or_(
                        LinkBudgetRow.source_node_id == node_id,
                        LinkBudgetRow.destination_node_id == node_id,
                    )
                )
            )
        }
    rows = _open_transfers(ctx, node_id, set(budgets))
    held = _in_maintenance(ctx, now) if any(a.policy_paused for _, a in rows) else set()
    steps, notes = _plan(ctx, node_id, budgets, rows, now, held)
    done.links = len({(j.source_node_id, j.destination_node_id) for j, _ in rows})
    # A pause is ours before it is sent: a crash after the PUT must not leave a paused
    # transfer that looks paused by a person (nobody would resume it). Marked and not sent,
    # the next allocation sends it again (or resumes, which a running transfer ignores).
    _mark_pausing(ctx, [step for step in steps if step.pause], now)
    applied = []
    for step in steps:
        try:
            if step.calls_node:
                # One partial update (transferPutRequest holds both): resumed at its new rate.
                status: Literal["paused", "running"] | None = (
                    "paused" if step.pause else "running" if step.resume else None
                )
                ctx.clients.get(node_id).modify_transfer(
                    step.remote_id, status=status, target_rate_kbps=step.kbps
                )
        except NodeError as exc:
            done.failed += 1
            log.warning("rate allocation for job %s: %s", step.job_id, exc)
            continue
        applied.append(step)
    done.sent = sum(1 for step in applied if step.calls_node)
    if applied or notes:
        _write(ctx, applied, notes, now)
    return done


def _in_maintenance(ctx: ServiceContext, now: datetime) -> set[int]:
    """Nodes in maintenance now, or by the next maintenance tick (which pauses that early:
    ticks come every half poll interval). Read only when the allocator has a pause to keep."""
    ahead = now + timedelta(seconds=ctx.settings.poll_interval / 2)
    with ctx.sessions() as session:
        return set(calendar(session, now).current) | set(calendar(session, ahead).current)


def _open_transfers(
    ctx: ServiceContext, node_id: int, budgeted: set[Link]
) -> list[tuple[JobRow, AttemptRow]]:
    """Each budgeted link's transfers on a node (current attempts the node holds), and the
    transfers this node runs that the allocator touched on links without a budget now."""
    with ctx.sessions() as session:
        found = session.execute(
            select(JobRow, AttemptRow)
            .join(
                AttemptRow,
                (AttemptRow.job_id == JobRow.id) & (AttemptRow.number == JobRow.attempt_count),
            )
            .where(
                JobRow.state.in_(POSTED),
                JobRow.cancel_requested.is_(False),
                AttemptRow.remote_id.is_not(None),
                AttemptRow.ended_at.is_(None),
                or_(
                    # touched before, on a link that may have lost its budget (cheap: few)
                    and_(
                        AttemptRow.source_node_id == node_id,
                        AttemptRow.allocated_at.is_not(None),
                    ),
                    *(
                        and_(JobRow.source_node_id == src, JobRow.destination_node_id == dst)
                        for src, dst in sorted(budgeted)
                    ),
                ),
            )
            .order_by(JobRow.id)
        ).all()
        session.expunge_all()
    return [
        (job, attempt)
        for job, attempt in found
        if (job.source_node_id, job.destination_node_id) in budgeted
        or (attempt.source_node_id == node_id and attempt.allocated_at is not None)
    ]


def _claim(job: JobRow) -> Claim:
    left = (
        None if job.bytes_expected is None else max(0, job.bytes_expected - job.bytes_transferred)
    )
    cap = job.options.get("target_rate_kbps") or None
    return Claim(job.id, job.priority, left, job.deadline, int(cap) if cap else None)


def _plan(
    ctx: ServiceContext,
    node_id: int,
    budgets: dict[Link, int],
    rows: list[tuple[JobRow, AttemptRow]],
    now: datetime,
    in_maintenance: set[int],
) -> tuple[list[Step], dict[str, str | None]]:
    """The node calls to make and each job's new note (None: clear it).

    The maintenance tick pauses only running transfers: one the allocator paused is not
    resumed while a window holds either of its nodes (it is, by a later allocation, after).
    """
    steps: list[Step] = []
    notes: dict[str, str | None] = {}
    interval = timedelta(seconds=ctx.settings.poll_interval)
    by_link: dict[Link, list[tuple[JobRow, AttemptRow]]] = {}
    for job, attempt in rows:
        by_link.setdefault((job.source_node_id, job.destination_node_id), []).append((job, attempt))
    for link, members in by_link.items():
        budget = budgets.get(link)
        # A person's pause takes the transfer out of the sharing; the allocator's does not.
        sharing = [
            (job, attempt)
            for job, attempt in members
            if job.state != JobState.PAUSED or attempt.policy_paused
        ]
        shares = allocate(budget, [_claim(job) for job, _ in sharing], now) if budget else {}
        for job, attempt in sharing:
            if attempt.source_node_id != node_id:  # the node that runs it
                continue
            share = shares.get(job.id)
            step: Step | None
            if share is None:  # the budget is gone: resume what it paused, at its own rate
                step = _release(job, attempt)
            elif attempt.allocated_at is not None and now - attempt.allocated_at < interval:
                continue  # once per poll interval per transfer
            else:
                step = _step(job, attempt, share)
                if step is None and job.allocation_note != share.why:
                    notes[job.id] = share.why  # as it is (within a few percent)
            held = {job.source_node_id, job.destination_node_id} & in_maintenance
            if step is not None and not (step.resume and held):
                steps.append(step)
    return steps, notes


def _step(job: JobRow, attempt: AttemptRow, share: Share) -> Step | None:
    """The call that brings one transfer to its share, if any is due (the node's own status
    says whether it is paused: a mark without a pause is sent again)."""
    ids = (job.id, attempt.id, str(attempt.remote_id))
    on_node_paused = attempt.status == AttemptState.PAUSED
    if share.paused:
        if on_node_paused:
            return None
        return Step(*ids, pause=True, event=share.why, note=share.why)
    if attempt.policy_paused or on_node_paused:
        event = f"resumed: {share.why}"
        return Step(*ids, kbps=share.kbps, resume=True, event=event, note=share.why)
    if not moved_enough(attempt.allocated_kbps, share.kbps):
        return None
    return Step(*ids, kbps=share.kbps, event=f"rate set to {share.why}", note=share.why)


def _release(job: JobRow, attempt: AttemptRow) -> Step:
    """Off a budget: resume a transfer it paused and give back the job's own target rate (a
    job without one keeps the last rate it was given: the node's default is not known)."""
    own = job.options.get("target_rate_kbps") or None
    kbps = int(own) if own else None
    said = f" at its own {units.bitrate(kbps)}" if kbps else ""
    if attempt.policy_paused:
        event = f"the link's budget was removed: resumed{said}"
    elif kbps:
        event = f"the link's budget was removed: back to its own {units.bitrate(kbps)}"
    else:
        event = "the link's budget was removed"
    return Step(
        job.id,
        attempt.id,
        str(attempt.remote_id),
        kbps=kbps,
        resume=attempt.policy_paused,
        release=True,
        event=event,
    )


def _mark_pausing(ctx: ServiceContext, pauses: list[Step], now: datetime) -> None:
    """Record the pauses about to be sent as the allocator's."""
    if not pauses:
        return
    with ctx.sessions() as session:
        session.execute(
            update(AttemptRow)
            .where(AttemptRow.id.in_([step.attempt_id for step in pauses]))
            .values(policy_paused=True, allocated_at=now)
        )
        session.commit()


def _write(
    ctx: ServiceContext, applied: list[Step], notes: dict[str, str | None], now: datetime
) -> None:
    """Record what the node accepted, one event per change, and each job's reason."""
    with ctx.sessions() as session:
        for step in applied:
            values: dict[str, object] = {"allocated_at": now}
            if step.release:
                values = {"allocated_at": None, "allocated_kbps": None, "policy_paused": False}
            elif step.pause:
                values["policy_paused"] = True
            else:
                values.update(allocated_kbps=step.kbps, policy_paused=False)
            session.execute(
                update(AttemptRow).where(AttemptRow.id == step.attempt_id).values(**values)
            )
            if step.event:
                record(session, step.job_id, "allocation", step.event, at=now)
            notes[step.job_id] = step.note
        for job_id, note in sorted(notes.items()):
            session.execute(update(JobRow).where(JobRow.id == job_id).values(allocation_note=note))
        session.commit()
