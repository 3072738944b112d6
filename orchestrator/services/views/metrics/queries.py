"""The database side of /metrics: a few SQL aggregates per scrape, never a scan into Python."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Subquery, case, extract, func, select
from sqlalchemy.orm import Session, aliased

from orchestrator.db.tables import AttemptRow, JobRow, NodeRow
from orchestrator.domain.ascp import classify
from orchestrator.domain.states import TERMINAL_STATES, JobState

# Job durations (created -> finished) span seconds to days; node transfers likewise.
DURATION_BUCKETS: tuple[float, ...] = (
    1,
    5,
    15,
    30,
    60,
    120,
    300,
    600,
    1800,
    3600,
    7200,
    21600,
    86400,
)
ON_NODE = [s.value for s in JobState if s.holds_a_transfer]
NODE_TERMINAL = ("completed", "failed", "canceled")  # node statuses that end a transfer


@dataclass(frozen=True)
class Histogram:
    """Cumulative counts at or below each bound of ``DURATION_BUCKETS``, the count and sum."""

    at_or_below: tuple[int, ...]
    count: int
    total: float

    def buckets(self) -> list[tuple[str, float]]:
        """Prometheus buckets, "+Inf" last."""
        pairs = [
            (repr(float(b)), float(n))
            for b, n in zip(DURATION_BUCKETS, self.at_or_below, strict=True)
        ]
        return [*pairs, ("+Inf", float(self.count))]


# Jobs as they were submitted: a fan-out counts once, as its parent (as on the dashboard),
# not again as each of its parts; its parts' transfers are in the transfer figures.
SUBMITTED_JOBS = JobRow.parent_id.is_(None)


def node_names(session: Session) -> dict[int, str]:
    """Every node's name by id."""
    return {int(i): str(n) for i, n in session.execute(select(NodeRow.id, NodeRow.name))}


def live_jobs_by_state(session: Session) -> dict[str, int]:
    """How many jobs are in each state a job can still leave (an index range per state)."""
    live = [s.value for s in JobState if s not in TERMINAL_STATES]
    counts = dict.fromkeys(live, 0)
    query = select(JobRow.state, func.count()).where(JobRow.state.in_(live), SUBMITTED_JOBS)
    for state, n in session.execute(query.group_by(JobRow.state)):
        counts[str(state)] = int(n)
    return counts


def ended_jobs_by_state(session: Session) -> dict[str, int]:
    """How many jobs ended in each way (these grow with history)."""
    ended = [s.value for s in TERMINAL_STATES]
    counts = dict.fromkeys(ended, 0)
    query = select(JobRow.state, func.count()).where(JobRow.state.in_(ended), SUBMITTED_JOBS)
    for state, n in session.execute(query.group_by(JobRow.state)):
        counts[str(state)] = int(n)
    return counts


def _seconds_between(session: Session, start: Any, end: Any) -> ColumnElement[Any]:
    if session.get_bind().dialect.name == "sqlite":
        return (func.julianday(end) - func.julianday(start)) * 86400.0
    return extract("epoch", end - start)


def _histograms(
    session: Session, inner: Subquery, group: list[str]
) -> dict[tuple[Any, ...], Histogram]:
    """One GROUP BY over ``inner`` (its duration column is ``d``) with a CASE per bucket."""
    d = inner.c.d
    keys = [inner.c[name] for name in group]
    at_or_below = [func.sum(case((d <= bound, 1), else_=0)) for bound in DURATION_BUCKETS]
    n = len(keys)
    result: dict[tuple[Any, ...], Histogram] = {}
    query = select(*keys, func.count(), func.sum(d), *at_or_below).group_by(*keys)
    for row in session.execute(query):
        below = tuple(int(c or 0) for c in row[n + 2 :])
        result[tuple(row[:n])] = Histogram(below, int(row[n]), float(row[n + 1] or 0.0))
    return result


def job_durations(session: Session) -> dict[str, Histogram]:
    """Created -> finished of every ended job, by its final state."""
    inner = (
        select(
            JobRow.state.label("state"),
            _seconds_between(session, JobRow.created_at, JobRow.finished_at).label("d"),
        )
        .where(
            JobRow.finished_at.is_not(None),
            JobRow.state.in_([s.value for s in TERMINAL_STATES]),
            SUBMITTED_JOBS,
        )
        .subquery()
    )
    return {str(key[0]): h for key, h in _histograms(session, inner, ["state"]).items()}


def transfer_durations(session: Session) -> dict[tuple[int, int, str], Histogram]:
    """Start -> end of every node transfer that ended, by source, destination and status.

    The start is the node's own start time when it said, else when the POST was recorded.
    """
    start = func.coalesce(AttemptRow.started_at, AttemptRow.submitted_at)
    inner = (
        select(
            JobRow.source_node_id.label("source"),  # the attempt's holds the runner
            JobRow.destination_node_id.label("destination"),
            AttemptRow.status.label("status"),
            _seconds_between(session, start, AttemptRow.ended_at).label("d"),
        )
        .join(JobRow, JobRow.id == AttemptRow.job_id)
        .where(
            AttemptRow.ended_at.is_not(None),
            start.is_not(None),
            AttemptRow.status.in_(NODE_TERMINAL),
        )
        .subquery()
    )
    groups = _histograms(session, inner, ["source", "destination", "status"])
    return {(int(s), int(d), str(st)): h for (s, d, st), h in groups.items()}


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def retries_by_class(session: Session) -> dict[str, int]:
    """New attempts made after an attempt ended, by why that attempt ended.

    An ascp error code gives its class (retryable, configuration, permanent, unexplained);
    an attempt with no code was ``submission`` (the node API failed or refused while
    submitting), ``lost`` (the node forgot the transfer) or its node status (e.g. canceled).
    """
    before = aliased(AttemptRow)
    after = aliased(AttemptRow)
    rows = session.execute(
        select(before.status, before.error_code, func.count())
        .join(after, (after.job_id == before.job_id) & (after.number == before.number + 1))
        .group_by(before.status, before.error_code)
    ).all()
    counts: Counter[str] = Counter()
    for status, code, n in rows:
        counts[_retry_class(str(status), code)] += int(n)
    return dict(counts)


def _retry_class(status: str, code: int | None) -> str:
    if code is not None:
        return classify(int(code)).value
    return {"abandoned": "submission"}.get(status, status)
