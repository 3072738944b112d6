"""dispatch: admit QUEUED jobs by priority then age, within per-node and per-link limits.

Admitted jobs are sent to submit in batches that share the node granting their tokens (the
destination; for pulls, the source), so one upload_setup (download_setup) call serves the batch.

Limits follow the bytes, whichever node runs the transfer: a job counts against its source's
``max_outbound`` and its destination's ``max_inbound``, push or pull. A pull is therefore
counted on the node that runs it (the destination, as inbound) and on the node that serves it.

A job whose destination paths overlap those of a job under way (``HOLDS_A_DESTINATION``, or
admitted earlier in the same run) waits behind it: two transfers writing one file fail.

A node also runs transfers for other clients (counted by services/conveyor/nodeload.py): those
and ours that it runs (a push's source, a pull's destination) fill its session limit (what its
/info says, else its ``max_outbound``), so a job waits in our queue, in our priority order,
rather than ``waiting`` in the node's own first-come queue. The check applies once the node's
load has been counted or its limit is known.

With adaptive concurrency a link allows the limit services/conveyor/concurrency.py last chose
for it (``ORCH_ADAPTIVE_START`` before its first decision) instead of ``max_per_link``.

A link whose circuit breaker is open, or a held destination, admits nothing but its probe
(services/conveyor/breakers.py).

Slots a poll freed are gathered: until the node's ``gather_until`` (set by the poll, see
polling._wake_dispatch) the jobs it would run are held, whoever woke this run, so that ends
read by the next poll or two go out as one submit batch. A held job keeps its place (its
slots and destination are taken, as if admitted) and says why; a run that holds some sends
itself again for the end of the gathering.

A job that waits says why (``waiting_reason``). A job is admitted only when every count has
room (source, destination, the runner's sessions, the link); the other checks only hold jobs
back. So a run first looks at the links of the queued jobs: when none has room by counts, it
admits nothing and reads only the queued jobs without a reason yet (new ones, or back in the
queue), to give them theirs. The others keep the reason they have until a run with room on
some link reads them again.

One dispatcher runs at a time: each run first updates the "dispatch" lock row (seeded by the
migrations), which serialises runs on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, func, select, update
from sqlalchemy.orm import Session

from orchestrator.db.engine import rowcount, upsert
from orchestrator.db.tables import (
    DISPATCH_LOCK,
    JobRow,
    LinkConcurrencyRow,
    NodeCursorRow,
    NodeHealthRow,
    NodeLoadRow,
    NodeRow,
    ServiceLockRow,
)
from orchestrator.domain.admission import node_full_reason
from orchestrator.domain.jobs import TransferMode, job_label
from orchestrator.domain.leases import DestinationLeases, Lease, written_paths
from orchestrator.domain.maintenance import Calendar, in_maintenance_text
from orchestrator.domain.states import HOLDS_A_DESTINATION, HOLDS_A_SLOT, JobState
from orchestrator.services.context import ServiceContext
from orchestrator.services.conveyor.breakers import Gates
from orchestrator.services.conveyor.concurrency import link_limits, starting_limit
from orchestrator.services.conveyor.nodeload import fresh_loads
from orchestrator.services.conveyor.throughput import measured_rate
from orchestrator.services.conveyor.transitions import move_many
from orchestrator.services.nodes.maintenance import calendar
from orchestrator.taskqueue import TaskName, countdown_after

BATCH = 500
LISTED_LABELS = 3  # jobs spelled out in a submit's arguments (Flower)
LISTED = 10  # job ids named in the result (Flower's search finds a job's dispatch by its id)


@dataclass
class DispatchSummary:
    """How many jobs were admitted, and how many still wait."""

    admitted: list[str] = field(default_factory=list)
    waiting: int = 0
    held: int = 0  # jobs whose node gathers freed slots for one batch (not waiting on a limit)
    held_until: datetime | None = field(default=None, repr=False)  # the first gathering's end
    # (job id, the node granting its token): submit batches share one *_setup call there
    admitted_to: list[tuple[str, int]] = field(default_factory=list, repr=False)

    def __str__(self) -> str:
        held = f", {self.held} held for freed slots to gather" if self.held else ""
        if not self.admitted:
            return (
                f"nothing admitted, {self.waiting} job(s) waiting{held}"
                if self.waiting or self.held
                else "no job waits"
            )
        named = ", ".join(self.admitted[:LISTED])
        if len(self.admitted) > LISTED:
            named += f" and {len(self.admitted) - LISTED} more"
        return f"admitted {len(self.admitted)} job(s): {named}; {self.waiting} still waiting{held}"


def _listed(labels: list[str]) -> str:
    """A submit's jobs for Flower: the first few in full, then how many more."""
    shown = "; ".join(labels[:LISTED_LABELS])
    more = len(labels) - LISTED_LABELS
    return shown + (f"; and {more} more" if more > 0 else "")


def _sources(stored: list[dict[str, str]]) -> list[str]:
    """A job's source paths as stored (``[{"source": path}]``)."""
    return [p["source"] for p in stored]


def _held_leases(session: Session) -> DestinationLeases:
    """The destination paths of every job under way, oldest job first (the one a reason names)."""
    leases = DestinationLeases()
    held = session.execute(
        select(JobRow.id, JobRow.destination_node_id, JobRow.destination_path, JobRow.source_paths)
        .where(JobRow.state.in_(HOLDS_A_DESTINATION), JobRow.is_parent.is_(False))
        .order_by(JobRow.created_at, JobRow.id)
    )
    for job_id, node_id, folder, sources in held:
        leases.take(node_id, written_paths(folder, _sources(sources)), Lease(job_id, folder))
    return leases


def _gathering(ctx: ServiceContext, session: Session, now: datetime) -> dict[int, datetime]:
    """Nodes whose freed slots are held until a moment from now, and until when (no later
    than one gathering from now: another host's clock may run ahead of this one)."""
    rows = session.execute(
        select(NodeCursorRow.node_id, NodeCursorRow.gather_until).where(
            NodeCursorRow.gather_until > now
        )
    )
    latest = now + timedelta(seconds=ctx.settings.dispatch_gather_seconds)
    return {node_id: min(until, latest) for node_id, until in rows if until is not None}


def _before_maintenance(
    session: Session,
    windows: Calendar,
    link: tuple[int, int],
    job: Row[Any],
    rates: dict[tuple[int, int], float | None],
) -> str | None:
    """Why the job may not start before a window of its nodes (domain/maintenance.py's rule):
    its estimate is the bytes left over the link's measured throughput."""
    if not (windows.upcoming.keys() & set(link)):
        return None
    estimate = None
    if job.bytes_expected:
        if link not in rates:
            rates[link] = measured_rate(session, *link, windows.now)
        rate = rates[link]
        if rate:
            estimate = max(0, job.bytes_expected - (job.bytes_transferred or 0)) / rate
    return windows.refusal(link, estimate)


@dataclass
class NodeSessions:
    """Each node's session limit and what takes its sessions: other clients' transfers (when
    counted) and ours that it runs."""

    limits: dict[int, int]  # only nodes whose load was counted or whose limit is known
    others: dict[int, int]
    ours: Counter[int]

    @classmethod
    def load(cls, ctx: ServiceContext, session: Session, nodes: dict[int, NodeRow]) -> NodeSessions:
        """The counts and limits dispatch acts on now."""
        others = fresh_loads(ctx, list(session.scalars(select(NodeLoadRow))), ctx.now())
        said = {
            node_id: limit
            for node_id, limit in session.execute(
                select(NodeHealthRow.node_id, NodeHealthRow.session_limit).where(
                    NodeHealthRow.session_limit.is_not(None)
                )
            )
            if limit is not None
        }
        limits = {
            node_id: said.get(node_id, node.max_outbound)
            for node_id, node in nodes.items()
            if node_id in others or node_id in said
        }
        return cls(limits, others, Counter())

    def why_full(self, node: NodeRow) -> str | None:
        """The waiting reason when the node has no session left, else None."""
        limit = self.limits.get(node.id)
        others, ours = self.others.get(node.id), self.ours[node.id]
        if limit is None or (others or 0) + ours < limit:
            return None
        return node_full_reason(node.name, others, ours, limit)


def _link_reason(
    ctx: ServiceContext,
    src: NodeRow,
    dst: NodeRow,
    adaptive: dict[tuple[int, int], LinkConcurrencyRow],
) -> str:
    """Why a job waits for its link's limit, with the adaptive decision that set it."""
    if not ctx.settings.adaptive_concurrency:
        return f"link {src.name}→{dst.name} is at its limit ({ctx.settings.max_per_link})"
    row = adaptive.get((src.id, dst.id))
    if row is None:
        return (
            f"link {src.name} → {dst.name} at its starting limit {starting_limit(ctx)} "
            "(adaptive concurrency has not measured it yet)"
        )
    ceiling = ctx.settings.max_per_link
    if row.active_limit > ceiling:
        return (
            f"link {src.name} → {dst.name} at its current limit {ceiling} (ORCH_MAX_PER_LINK; "
            f"adaptive concurrency had reached {row.active_limit}: {row.reason})"
        )
    return f"link {src.name} → {dst.name} at its current limit {row.active_limit} ({row.reason})"


@dataclass
class _Taken:
    """The slots taken now: per source, per destination, per link, and each node's sessions."""

    sessions: NodeSessions
    adaptive: dict[tuple[int, int], LinkConcurrencyRow]
    out: Counter[int] = field(default_factory=Counter)
    into: Counter[int] = field(default_factory=Counter)
    links: Counter[tuple[int, int]] = field(default_factory=Counter)

    def take(self, src_id: int, dst_id: int, runner_id: int, count: int = 1) -> None:
        """Count ``count`` more jobs from ``src_id`` to ``dst_id`` run by ``runner_id``."""
        self.out[src_id] += count
        self.into[dst_id] += count
        self.links[(src_id, dst_id)] += count
        self.sessions.ours[runner_id] += count

    def why_full(
        self, ctx: ServiceContext, src: NodeRow, dst: NodeRow, runner: NodeRow
    ) -> str | None:
        """Why a job on this link may not start by the counts alone, else None (room)."""
        if self.out[src.id] >= src.max_outbound:
            return f"source node {src.name} is at its limit ({src.max_outbound} active)"
        if self.into[dst.id] >= dst.max_inbound:
            return f"destination node {dst.name} is at its limit ({dst.max_inbound} active)"
        if (full := self.sessions.why_full(runner)) is not None:
            return full
        link_limit = ctx.settings.max_per_link
        if ctx.settings.adaptive_concurrency:
            row = self.adaptive.get((src.id, dst.id))
            # ORCH_MAX_PER_LINK is its ceiling, at once (lowered: before the next decision).
            link_limit = starting_limit(ctx) if row is None else min(row.active_limit, link_limit)
        if self.links[(src.id, dst.id)] >= link_limit:
            return _link_reason(ctx, src, dst, self.adaptive)
        return None


def dispatch(ctx: ServiceContext, *, holder: str = "dispatcher") -> DispatchSummary:
    """Admit what the limits allow; enqueue a submit for each admitted job after commit."""
    summary = DispatchSummary()
    now = ctx.now()
    # The submit message is on its way; the sweeper sends it again only if it was lost.
    resend_at = now + timedelta(seconds=ctx.settings.queued_sweep_seconds)
    with ctx.unit_of_work() as work:
        session = work.session
        locked = session.execute(
            update(ServiceLockRow)
            .where(ServiceLockRow.name == DISPATCH_LOCK)
            .values(holder=holder, taken_at=now)
        )
        if rowcount(locked) == 0:  # a database emptied by hand: put the row back, then lock it
            session.execute(
                upsert(session)(ServiceLockRow).values(name=DISPATCH_LOCK).on_conflict_do_nothing()
            )
            session.execute(
                update(ServiceLockRow)
                .where(ServiceLockRow.name == DISPATCH_LOCK)
                .values(holder=holder, taken_at=now)
            )
        nodes = {n.id: n for n in session.scalars(select(NodeRow))}
        active = session.execute(
            select(JobRow.source_node_id, JobRow.destination_node_id, JobRow.mode, func.count())
            # A fan-out's parent holds nothing itself: its parts are counted.
            .where(JobRow.state.in_(HOLDS_A_SLOT), JobRow.is_parent.is_(False))
            .group_by(JobRow.source_node_id, JobRow.destination_node_id, JobRow.mode)
        ).all()
        adaptive = link_limits(session) if ctx.settings.adaptive_concurrency else {}
        taken = _Taken(NodeSessions.load(ctx, session, nodes), adaptive)
        for source_id, destination_id, mode, count in active:
            runner_id = destination_id if mode == TransferMode.PULL else source_id
            taken.take(source_id, destination_id, runner_id, count)
        pending = session.execute(
            select(JobRow.source_node_id, JobRow.destination_node_id, JobRow.mode, func.count())
            .where(JobRow.state == JobState.QUEUED)
            .group_by(JobRow.source_node_id, JobRow.destination_node_id, JobRow.mode)
        ).all()
        room = any(
            taken.why_full(ctx, nodes[s], nodes[d], nodes[d if mode == TransferMode.PULL else s])
            is None
            for s, d, mode, _ in pending
        )
        wanted = select(
            JobRow.id,
            JobRow.source_node_id,
            JobRow.destination_node_id,
            JobRow.waiting_reason,
            JobRow.source_paths,
            JobRow.destination_path,
            JobRow.mode,
            JobRow.bytes_expected,
            JobRow.bytes_transferred,
        ).where(JobRow.state == JobState.QUEUED)
        if not room:
            # Nothing can be admitted: only jobs without a reason get one; the others keep
            # theirs (a node disabled meanwhile says so at the next run with room).
            wanted = wanted.where(JobRow.waiting_reason.is_(None))
        queued = (
            session.execute(
                wanted.order_by(JobRow.priority.desc(), JobRow.created_at).limit(BATCH)
            ).all()
            if pending
            else []
        )
        leases = _held_leases(session) if queued else DestinationLeases()
        gates = Gates.load(session) if queued else Gates()
        windows = calendar(session, now) if queued else Calendar(now, {}, {})
        gathering = _gathering(ctx, session, now) if queued else {}
        rates: dict[tuple[int, int], float | None] = {}  # bytes/s measured per link
        admit: dict[str, str] = {}  # job id -> its event message
        labels: dict[str, str] = {}  # job id -> the job in one line, for Flower
        reasons: dict[str, list[str]] = {}  # a new waiting reason -> the jobs it is now true for
        for job in queued:
            src, dst = nodes[job.source_node_id], nodes[job.destination_node_id]
            link = (src.id, dst.id)
            runner = dst if job.mode == TransferMode.PULL else src
            writes = written_paths(job.destination_path, _sources(job.source_paths))
            reason = None
            if not src.enabled:
                reason = f"source node {src.name} is disabled"
            elif not dst.enabled:
                reason = f"destination node {dst.name} is disabled"
            elif (down := windows.blocking(src.id, dst.id)) is not None:
                reason = in_maintenance_text(down, now)
            elif early := _before_maintenance(session, windows, link, job, rates):
                reason = early
            elif (blocker := leases.holder(dst.id, writes)) is not None:
                reason = (
                    f"behind job {blocker.job_id[:8]} "
                    f"(overlapping destination {dst.name}:{blocker.destination_path})"
                )
            elif (full := taken.why_full(ctx, src, dst, runner)) is not None:
                reason = full
            elif runner.id in gathering:  # it keeps its place: slots and destination taken
                until = gathering[runner.id]
                summary.held += 1
                summary.held_until = min(summary.held_until or until, until)
                taken.take(src.id, dst.id, runner.id)
                leases.take(dst.id, writes, Lease(job.id, job.destination_path))
                gathered = f"gathering the slots {runner.name} freed, to go out as one batch"
                if job.waiting_reason != gathered:
                    reasons.setdefault(gathered, []).append(job.id)
                continue
            else:  # last: a breaker's probe goes through only when the job is admitted
                reason = gates.why_waiting(job.id, src, dst, now, session)
            if reason is not None:
                summary.waiting += 1
                if job.waiting_reason != reason:
                    reasons.setdefault(reason, []).append(job.id)
                continue
            admit[job.id] = (
                f"admitted ({taken.out[src.id] + 1}/{src.max_outbound} out of {src.name})"
            )
            first = job.source_paths[0]["source"] if job.source_paths else ""
            labels[job.id] = job_label(job.id, src.name, first, dst.name, job.destination_path)
            taken.take(src.id, dst.id, runner.id)
            leases.take(dst.id, writes, Lease(job.id, job.destination_path))
            granter = src.id if job.mode == TransferMode.PULL else dst.id
            summary.admitted_to.append((job.id, granter))
        if not room:  # every queued job waits, read or not (at most a run's worth, as before)
            summary.waiting = min(sum(count for *_, count in pending), BATCH)
        for reason, job_ids in reasons.items():
            session.execute(
                update(JobRow)
                .where(JobRow.id.in_(job_ids), JobRow.state == JobState.QUEUED)
                .values(waiting_reason=reason)
                .execution_options(synchronize_session=False)
            )
        summary.admitted = list(
            move_many(
                work,
                admit,
                JobState.QUEUED,
                JobState.ADMITTED,
                at=now,
                values={"waiting_reason": None, "next_attempt_at": resend_at},
            )
        )
        admitted = set(summary.admitted)  # a job canceled meanwhile did not move
        summary.admitted_to = [(j, d) for j, d in summary.admitted_to if j in admitted]
        work.commit()
    if summary.held_until is not None:
        wait = (summary.held_until - now).total_seconds()
        ctx.enqueue(TaskName.DISPATCH, countdown=countdown_after(wait))
    by_granter: dict[int, list[str]] = {}
    for job_id, granter_id in summary.admitted_to:
        by_granter.setdefault(granter_id, []).append(job_id)
    for job_ids in by_granter.values():
        # As few batches as ORCH_SUBMIT_BATCH_SIZE allows, as even as they go (60 and 60, not
        # 100 and 20): each costs one *_setup and one /files/info.
        batches = -(-len(job_ids) // ctx.settings.submit_batch_size)
        for part in range(batches):
            batch = job_ids[part * len(job_ids) // batches : (part + 1) * len(job_ids) // batches]
            ctx.enqueue(TaskName.SUBMIT, *batch, argsrepr=_listed([labels[j] for j in batch]))
    return summary
