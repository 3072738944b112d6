"""The dashboard's read model: everything the operator's page shows, in a handful of queries."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orchestrator.db.tables import JobRow, NodeCursorRow, NodeRow, ThroughputMinuteRow
from orchestrator.domain.states import JobState
from orchestrator.domain.transfers import bytes_per_second, eta_seconds
from orchestrator.services import throughput
from orchestrator.services.metrics.queries import poll_status
from orchestrator.services.replication import ScheduleView, list_schedule_views

S = JobState
# Jobs that hold (or are about to hold, or wait to retry) a node transfer.
ACTIVE = (S.ADMITTED, S.SUBMITTING, S.SUBMITTED, S.RUNNING, S.PAUSED, S.RETRY_WAIT)
ON_NODE = (S.SUBMITTING, S.SUBMITTED, S.RUNNING, S.PAUSED)
PROBLEMS = (S.FAILED, S.NEEDS_ATTENTION)
FINISHED = (S.COMPLETED, S.CANCELED)
WINDOW_MINUTES = 60
LIMITS = {"active": 50, "queued": 25, "problems": 15, "finished": 10}


@dataclass(frozen=True)
class JobLine:
    """One job as a dashboard row."""

    id: str
    state: str
    source_node: str
    destination_node: str
    paths: list[str]
    destination_path: str
    labels: dict[str, str]
    priority: int
    schedule_id: str | None
    attempt: int
    max_attempts: int
    bytes_transferred: int
    bytes_expected: int | None
    files_completed: int
    files_expected: int | None
    rate: float | None  # bytes per second
    eta_seconds: float | None
    waiting_reason: str | None
    reason: str | None
    error_code: int | None
    error_text: str | None
    created_at: datetime
    state_changed_at: datetime
    finished_at: datetime | None
    next_attempt_at: datetime | None

    @property
    def fraction(self) -> float | None:
        """How much of the expected bytes moved (0..1), when the node said how many to expect."""
        if not self.bytes_expected:
            return 1.0 if self.state == S.COMPLETED else None
        return min(1.0, self.bytes_transferred / self.bytes_expected)


@dataclass(frozen=True)
class NodeLine:
    """One node: what its last poll said, and the work going through it."""

    name: str
    enabled: bool
    health: str  # polling | idle | lagging | error | never polled | disabled
    reachable: bool | None  # from the last poll; None: never polled
    last_poll_at: datetime | None
    last_success_at: datetime | None
    poll_lag_seconds: float | None  # since the last good poll, while it has transfers to follow
    last_error: str | None
    outbound: int
    inbound: int
    max_outbound: int
    max_inbound: int
    rate_out: float  # bytes per second, summed over its running transfers
    rate_in: float
    moved_out: int  # bytes, the last hour
    moved_in: int


@dataclass(frozen=True)
class Overview:
    """Everything the dashboard shows, read at ``now``."""

    now: datetime
    counts: dict[str, int]
    failed_last_day: int
    active: list[JobLine]
    queued: list[JobLine]
    problems: list[JobLine]
    finished: list[JobLine]
    nodes: list[NodeLine]
    minutes: list[throughput.Minute]  # the last hour, oldest first, one per minute
    schedules: list[ScheduleView] = field(default_factory=list)

    @property
    def rate_now(self) -> float:
        """Bytes per second over every running transfer."""
        return sum(job.rate or 0.0 for job in self.active if job.state == S.RUNNING)

    @property
    def moved_last_hour(self) -> int:
        """Bytes moved in the chart's hour."""
        return sum(m.bytes for m in self.minutes)

    def count(self, *states: JobState) -> int:
        """How many jobs are in these states."""
        return sum(self.counts.get(s.value, 0) for s in states)

    def verdict(self) -> tuple[str, list[str]]:
        """Is everything moving, and if not why: a level (ok, warn, bad) and short reasons."""
        bad = [f"{n.name}: last poll failed" for n in self.nodes if n.health == "error"]
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
        if attention := self.count(S.NEEDS_ATTENTION):
            warn.append(f"{attention} job(s) need attention")
        if retrying := self.count(S.RETRY_WAIT):
            warn.append(f"{retrying} job(s) wait to retry")
        if bad or warn:
            return ("bad" if bad else "warn"), bad + warn
        moving, waiting = self.count(*ACTIVE), self.count(S.QUEUED)
        if not moving and not waiting:
            return "ok", ["All quiet: no job is moving or waiting."]
        return "ok", [f"Everything is moving: {moving} job(s) active, {waiting} waiting."]


def overview(session: Session, now: datetime, *, poll_interval: float) -> Overview:
    """Read the dashboard's model; ``poll_interval`` decides when a node's poll is late."""
    names = {row.id: row.name for row in session.scalars(select(NodeRow))}
    counts = {
        str(state): int(n)
        for state, n in session.execute(
            select(JobRow.state, func.count()).group_by(JobRow.state)
        ).all()
    }
    since = throughput.window_start(now, WINDOW_MINUTES)
    return Overview(
        now=now,
        counts=counts,
        failed_last_day=int(
            session.scalar(
                select(func.count())
                .select_from(JobRow)
                .where(JobRow.state == S.FAILED, JobRow.state_changed_at >= now - timedelta(1))
            )
            or 0
        ),
        active=_jobs(session, names, ACTIVE, "active", JobRow.created_at, JobRow.id),
        queued=_jobs(
            session, names, (S.QUEUED,), "queued", JobRow.priority.desc(), JobRow.created_at
        ),
        problems=_jobs(session, names, PROBLEMS, "problems", JobRow.state_changed_at.desc()),
        finished=_jobs(session, names, FINISHED, "finished", JobRow.state_changed_at.desc()),
        nodes=_nodes(session, now, since, poll_interval),
        minutes=_minutes(session, now, since),
        schedules=list_schedule_views(session, now),
    )


def _jobs(
    session: Session, names: dict[int, str], states: tuple[JobState, ...], kind: str, *order: Any
) -> list[JobLine]:
    rows = session.scalars(
        select(JobRow).where(JobRow.state.in_(states)).order_by(*order).limit(LIMITS[kind])
    )
    return [_line(job, names) for job in rows]


def _line(job: JobRow, names: dict[int, str]) -> JobLine:
    running = job.state == S.RUNNING
    rate = bytes_per_second(job.rate_kbps) if running else None
    eta = eta_seconds(job.bytes_transferred, job.bytes_expected, job.rate_kbps) if running else None
    return JobLine(
        id=job.id,
        state=job.state,
        source_node=names.get(job.source_node_id, "?"),
        destination_node=names.get(job.destination_node_id, "?"),
        paths=[p["source"] for p in job.source_paths],
        destination_path=job.destination_path,
        labels=dict(job.labels or {}),
        priority=job.priority,
        schedule_id=job.schedule_id,
        attempt=job.attempt_count - job.submit_failures,
        max_attempts=job.max_attempts,
        bytes_transferred=job.bytes_transferred,
        bytes_expected=job.bytes_expected,
        files_completed=job.files_completed,
        files_expected=job.files_expected,
        rate=rate,
        eta_seconds=eta,
        waiting_reason=job.waiting_reason if job.state == S.QUEUED else None,
        reason=job.reason,
        error_code=job.error_code,
        error_text=job.error_text,
        created_at=job.created_at,
        state_changed_at=job.state_changed_at,
        finished_at=job.finished_at,
        next_attempt_at=job.next_attempt_at if job.state == S.RETRY_WAIT else None,
    )


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
        .where(JobRow.state.in_(ON_NODE))
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
    lines = []
    for node, cursor in session.execute(
        select(NodeRow, NodeCursorRow)
        .outerjoin(NodeCursorRow, NodeCursorRow.node_id == NodeRow.id)
        .order_by(NodeRow.name)
    ).all():
        last_ok = cursor.last_success_at if cursor else None
        error = cursor.last_error if cursor else None
        following = outbound[node.id] > 0
        lag = lags.get(node.id) if following else None
        if not node.enabled:
            health = "disabled"
        elif error:
            health = "error"
        elif following and (last_ok is None or (lag or 0.0) > late):
            health = "lagging"
        elif following:
            health = "polling"
        elif last_ok is None:
            health = "never polled"
        else:
            health = "idle"
        lines.append(
            NodeLine(
                name=node.name,
                enabled=node.enabled,
                health=health,
                reachable=False if error else (True if last_ok else None),
                last_poll_at=cursor.last_poll_at if cursor else None,
                last_success_at=last_ok,
                poll_lag_seconds=lag,
                last_error=error,
                outbound=outbound[node.id],
                inbound=inbound[node.id],
                max_outbound=node.max_outbound,
                max_inbound=node.max_inbound,
                rate_out=rate_out[node.id],
                rate_in=rate_in[node.id],
                moved_out=moved_out[node.id],
                moved_in=moved_in[node.id],
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
