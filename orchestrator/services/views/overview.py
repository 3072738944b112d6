"""The dashboard's read model: everything the operator's page shows, in a handful of queries."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orchestrator.db.tables import (
    JobRow,
    NodeCursorRow,
    NodeHealthRow,
    NodeRow,
    ThroughputMinuteRow,
)
from orchestrator.domain.nodes import at_risk
from orchestrator.domain.states import (
    FAILED_ENDS,
    MAY_HOLD_TRANSFER,
    TERMINAL_STATES,
    UNDER_WAY,
    JobState,
)
from orchestrator.domain.transfers import bytes_per_second
from orchestrator.services.context import ServiceContext
from orchestrator.services.nodes.freshness import poll_status
from orchestrator.services.nodes.maintenance import calendar
from orchestrator.services.views import throughput
from orchestrator.services.views.jobs import JobView, project
from orchestrator.services.views.nodes import node_reachability
from orchestrator.services.views.schedules import ScheduleView, list_schedule_views

S = JobState
FINISHED = frozenset({S.COMPLETED, S.CANCELED})
WINDOW_MINUTES = 60
LIMITS = {"active": 50, "queued": 25, "problems": 15, "finished": 10}


@dataclass(frozen=True)
class NodeLine:
    """One node: what its last poll said, and the work going through it."""

    name: str
    enabled: bool
    # polling | idle | lagging | records at risk | error | unreachable | unknown | disabled
    health: str
    reachable: bool | None  # by the newer of the last poll and the last check; None: unknown
    reachable_as_of: datetime | None
    last_poll_at: datetime | None
    last_success_at: datetime | None
    poll_lag_seconds: float | None  # since the last good poll, while it has transfers to follow
    activity_retention_seconds: int  # how long the node keeps transfer records
    last_error: str | None  # why it is unreachable (the newest fact's error)
    checked_at: datetime | None  # the last health check (ping and /info)
    version: str | None  # from the node's /info
    check_error: str | None  # why the last check found it unreachable
    outbound: int
    inbound: int
    max_outbound: int
    max_inbound: int
    rate_out: float  # bytes per second, summed over its running transfers
    rate_in: float
    moved_out: int  # bytes, the last hour
    moved_in: int
    maintenance: str | None = None  # under way, or the next window within a week


@dataclass(frozen=True)
class Overview:
    """Everything the dashboard shows, read at ``now``."""

    now: datetime
    counts: dict[str, int]
    failed_last_day: int  # not acknowledged yet
    attention_open: int  # NEEDS_ATTENTION jobs not acknowledged yet
    active: list[JobView]
    queued: list[JobView]
    problems: list[JobView]
    finished: list[JobView]
    nodes: list[NodeLine]
    minutes: list[throughput.Minute]  # the last hour, oldest first, one per minute
    schedules: list[ScheduleView] = field(default_factory=list)

    @property
    def rate_now(self) -> float:
        """Bytes per second over every running transfer."""
        return sum(job.rate_bytes or 0.0 for job in self.active if job.state == S.RUNNING)

    @property
    def moved_last_hour(self) -> int:
        """Bytes moved in the chart's hour."""
        return sum(m.bytes for m in self.minutes)

    def count(self, *states: JobState) -> int:
        """How many jobs are in these states (not ended ones: their number only grows)."""
        if ended := TERMINAL_STATES.intersection(states):
            raise ValueError(f"the overview does not count ended jobs ({sorted(ended)})")
        return sum(self.counts.get(s.value, 0) for s in states)

    def verdict(self) -> tuple[str, list[str]]:
        """Is everything moving, and if not why: a level (ok, warn, bad) and short reasons."""
        bad = [f"{n.name}: last poll failed" for n in self.nodes if n.health == "error"]
        bad += [f"{n.name}: does not answer" for n in self.nodes if n.health == "unreachable"]
        bad += [
            f"{n.name}: no good poll for {n.poll_lag_seconds or 0:.0f} s, near the "
            f"{n.activity_retention_seconds} s it keeps records: end states may expire unread"
            for n in self.nodes
            if n.health == "records at risk"
        ]
        if self.failed_last_day:
            bad.append(f"{self.failed_last_day} job(s) failed in the last 24 h")
        bad += [f"schedule {s.id} is failing" for s in self.schedules if s.health == "failing"]
        warn = [
            f"{n.name}: no good poll for {n.poll_lag_seconds or 0:.0f} s"
            for n in self.nodes
            if n.health == "lagging"
        ]
        warn += [
            f"schedule {s.id}: a run outlasts its slots"
            for s in self.schedules
            if s.health == "stalled"
        ]
        if attention := self.attention_open:
            warn.append(f"{attention} job(s) need attention")
        if retrying := self.count(S.RETRY_WAIT):
            warn.append(f"{retrying} job(s) wait to retry")
        if bad or warn:
            return ("bad" if bad else "warn"), bad + warn
        moving, waiting = self.count(*UNDER_WAY), self.count(S.QUEUED)
        if not moving and not waiting:
            return "ok", ["All quiet: no job is moving or waiting."]
        return "ok", [f"Everything is moving: {moving} job(s) active, {waiting} waiting."]


def dashboard(ctx: ServiceContext) -> Overview:
    """The dashboard's model now."""
    with ctx.sessions() as session:
        return overview(session, ctx.now(), poll_interval=ctx.settings.poll_interval)


def overview(session: Session, now: datetime, *, poll_interval: float) -> Overview:
    """Read the dashboard's model; ``poll_interval`` decides when a node's poll is late."""
    names = {row.id: row.name for row in session.scalars(select(NodeRow))}
    counts = {  # the states a tile counts: not the ended ones, which grow with history
        str(state): int(n)
        for state, n in session.execute(
            select(JobRow.state, func.count())
            .where(
                JobRow.state.in_([s for s in JobState if s not in TERMINAL_STATES]),
                JobRow.parent_id.is_(None),  # a fan-out counts once, as its parent
            )
            .group_by(JobRow.state)
        ).all()
    }
    since = throughput.window_start(now, WINDOW_MINUTES)
    return Overview(
        now=now,
        counts=counts,
        failed_last_day=_unacknowledged(
            session, JobRow.state == S.FAILED, JobRow.state_changed_at >= now - timedelta(1)
        ),
        attention_open=_unacknowledged(session, JobRow.state == S.NEEDS_ATTENTION),
        active=_jobs(session, names, UNDER_WAY, "active", JobRow.created_at, JobRow.id),
        queued=_jobs(
            session, names, (S.QUEUED,), "queued", JobRow.priority.desc(), JobRow.created_at
        ),
        problems=_latest(session, names, FAILED_ENDS, "problems"),
        finished=_latest(session, names, FINISHED, "finished"),
        nodes=_nodes(session, now, since, poll_interval),
        minutes=_minutes(session, now, since),
        schedules=list_schedule_views(session, now),
    )


def _unacknowledged(session: Session, *where: Any) -> int:
    """How many jobs match and nobody acknowledged."""
    query = select(func.count()).select_from(JobRow).where(*where, JobRow.parent_id.is_(None))
    return int(session.scalar(query.where(JobRow.acknowledged_at.is_(None))) or 0)


def _jobs(
    session: Session, names: dict[int, str], states: Iterable[JobState], kind: str, *order: Any
) -> list[JobView]:
    rows = session.scalars(
        select(JobRow)
        .where(JobRow.state.in_(states), JobRow.parent_id.is_(None))
        .order_by(*order)
        .limit(LIMITS[kind])
    )
    return [project(job, names) for job in rows]


def _latest(
    session: Session, names: dict[int, str], states: Iterable[JobState], kind: str
) -> list[JobView]:
    """The jobs that most recently entered one of ``states``: one index range per state,
    merged here (a database walks (state, state_changed_at) in order for one state only)."""
    rows = [
        job
        for state in states
        for job in session.scalars(
            select(JobRow)
            .where(JobRow.state == state, JobRow.parent_id.is_(None))
            .order_by(JobRow.state_changed_at.desc())
            .limit(LIMITS[kind])
        )
    ]
    rows.sort(key=lambda job: job.state_changed_at, reverse=True)
    return [project(job, names) for job in rows[: LIMITS[kind]]]


def _nodes(
    session: Session, now: datetime, since: datetime, poll_interval: float
) -> list[NodeLine]:
    outbound: Counter[int] = Counter()
    inbound: Counter[int] = Counter()
    rate_out: defaultdict[int, float] = defaultdict(float)
    rate_in: defaultdict[int, float] = defaultdict(float)
    for source, destination, state, n, kbps in session.execute(
        select(
            JobRow.source_node_id,
            JobRow.destination_node_id,
            JobRow.state,
            func.count(),
            func.sum(JobRow.rate_kbps),
        )
        .where(JobRow.state.in_(MAY_HOLD_TRANSFER), JobRow.is_parent.is_(False))
        .group_by(JobRow.source_node_id, JobRow.destination_node_id, JobRow.state)
    ).all():
        outbound[source] += n
        inbound[destination] += n
        if state == S.RUNNING:
            rate_out[source] += bytes_per_second(kbps) or 0
            rate_in[destination] += bytes_per_second(kbps) or 0
    moved_out: Counter[int] = Counter()
    moved_in: Counter[int] = Counter()
    for source, destination, nbytes in session.execute(
        select(
            ThroughputMinuteRow.source_node_id,
            ThroughputMinuteRow.destination_node_id,
            func.sum(ThroughputMinuteRow.bytes),
        )
        .where(ThroughputMinuteRow.minute >= since)
        .group_by(ThroughputMinuteRow.source_node_id, ThroughputMinuteRow.destination_node_id)
    ).all():
        moved_out[source] += int(nbytes or 0)
        moved_in[destination] += int(nbytes or 0)
    late = max(15.0, 5 * poll_interval)
    lags = {p.node_id: p.lag_seconds for p in poll_status(session, now)}  # as /metrics says
    windows = calendar(session, now)
    lines = []
    for node, cursor, checked in session.execute(
        select(NodeRow, NodeCursorRow, NodeHealthRow)
        .outerjoin(NodeCursorRow, NodeCursorRow.node_id == NodeRow.id)
        .outerjoin(NodeHealthRow, NodeHealthRow.node_id == NodeRow.id)
        .order_by(NodeRow.name)
    ).all():
        last_ok = cursor.last_success_at if cursor else None
        poll_error = cursor.last_error if cursor else None
        following = outbound[node.id] > 0
        # A node with transfers to follow is judged by its polls (every few seconds); any other
        # by the newer of its last poll and its last health check.
        seen = node_reachability(cursor, None if following else checked)
        lag = lags.get(node.id) if following else None
        if not node.enabled:
            health = "disabled"
        elif following and at_risk(lag or 0.0, node.activity_retention_seconds):
            health = "records at risk"
        elif following and poll_error:
            health = "error"
        elif following and (last_ok is None or (lag or 0.0) > late):
            health = "lagging"
        elif following:
            health = "polling"
        else:  # nothing to poll for: the newer of the last poll and the last check tells
            health = {True: "idle", False: "unreachable", None: "unknown"}[seen.reachable]
        lines.append(
            NodeLine(
                name=node.name,
                enabled=node.enabled,
                health=health,
                reachable=seen.reachable,
                reachable_as_of=seen.as_of,
                last_poll_at=cursor.last_poll_at if cursor else None,
                last_success_at=last_ok,
                poll_lag_seconds=lag,
                activity_retention_seconds=node.activity_retention_seconds,
                last_error=seen.error,
                checked_at=checked.checked_at if checked else None,
                version=checked.version if checked else None,
                check_error=checked.error if checked and not checked.reachable else None,
                outbound=outbound[node.id],
                inbound=inbound[node.id],
                max_outbound=node.max_outbound,
                max_inbound=node.max_inbound,
                rate_out=rate_out[node.id],
                rate_in=rate_in[node.id],
                moved_out=moved_out[node.id],
                moved_in=moved_in[node.id],
                maintenance=windows.note(node.id),
            )
        )
    return lines


def _minutes(session: Session, now: datetime, since: datetime) -> list[throughput.Minute]:
    """One entry per minute of the window (zero where nothing moved)."""
    moved = {m.minute: m for m in throughput.per_minute(session, since)}
    minutes = []
    for i in range(WINDOW_MINUTES):
        at = since + timedelta(minutes=i)
        minutes.append(moved.get(at, throughput.Minute(at, 0, 0)))
    return minutes
