"""Circuit breakers in the database: per-link breakers and destination holds.

The finisher reports each ended attempt of a link (``note_link_outcome``) and each full disk
(``hold_destination``); dispatch asks ``Gates.why_waiting`` before it admits a job, which
lets one probe through when a breaker's cool-down is over; ``release_node`` is the operator's
resume. Every opening is told once: an event on the job that tripped it and one alert.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from orchestrator.db.engine import rowcount, upsert
from orchestrator.db.tables import BreakerRow, JobRow, NodeRow
from orchestrator.domain.breaker import (
    FAILURE,
    SUCCESS,
    BreakerPolicy,
    BreakerState,
    Scope,
    clock,
    cool_down,
    hold_reason,
    key_of,
    link_reason,
    probe_due,
    remember,
)
from orchestrator.domain.states import UNDER_WAY, JobState
from orchestrator.services.alerts.outbox import on_operator_event
from orchestrator.services.context import ServiceContext, UnitOfWork
from orchestrator.services.events import record
from orchestrator.services.nodes.registry import node_named
from orchestrator.settings import Settings
from orchestrator.taskqueue import TaskName

log = logging.getLogger(__name__)

LINK_OPEN = "link_breaker_open"
DESTINATION_HELD = "destination_held"
# A probe still counts while its job may yet end on the link.
_PROBE_ALIVE = UNDER_WAY | {JobState.QUEUED}


def policy_of(settings: Settings) -> BreakerPolicy:
    """The breaker policy of the settings."""
    return BreakerPolicy(
        window=settings.breaker_window,
        failures=settings.breaker_failures,
        cool_down_seconds=settings.breaker_cool_down_seconds,
        cool_down_max_seconds=settings.breaker_cool_down_max_seconds,
    )


def _names(session: Session, *node_ids: int) -> list[str]:
    rows = session.execute(select(NodeRow.id, NodeRow.name).where(NodeRow.id.in_(node_ids)))
    found = {int(node_id): str(name) for node_id, name in rows}
    return [found.get(node_id, f"#{node_id}") for node_id in node_ids]


class KnownBreakers:
    """The breaker rows that exist, read once per unit of work: a success on a link or at a
    destination with no row (the usual case) then costs no statement of its own."""

    def __init__(self) -> None:
        self._keys: set[str] | None = None

    def has(self, session: Session, key: str) -> bool:
        """Whether a row exists under ``key`` (as read at first use, plus those made since)."""
        if self._keys is None:
            self._keys = set(session.scalars(select(BreakerRow.key)))
        return key in self._keys

    def made(self, key: str) -> None:
        """A row this unit created."""
        if self._keys is not None:
            self._keys.add(key)

    def write(self, session: Session) -> None:
        """Nothing to write: a cache of reads."""


def _locked(session: Session, key: str) -> BreakerRow | None:
    return session.scalar(select(BreakerRow).where(BreakerRow.key == key).with_for_update())


def _ensure(
    session: Session, key: str, scope: Scope, source_id: int | None, destination_id: int
) -> BreakerRow:
    """The breaker's row, created closed if it is not there (two writers: one insert wins)."""
    session.execute(
        upsert(session)(BreakerRow)
        .values(
            key=key,
            scope=scope.value,
            source_node_id=source_id,
            destination_node_id=destination_id,
            state=BreakerState.CLOSED.value,
            outcomes="",
        )
        .on_conflict_do_nothing(index_elements=["key"])
    )
    row = _locked(session, key)
    assert row is not None
    return row


def _open(row: BreakerRow, policy: BreakerPolicy, now: datetime) -> None:
    previous = row.cool_down_seconds if row.state == BreakerState.PROBING else None
    row.cool_down_seconds = policy.next_cool_down(previous)
    row.state = BreakerState.OPEN.value
    row.opened_at = row.opened_at if previous is not None else now
    row.probe_at = now + cool_down(row.cool_down_seconds)
    row.probe_job_id = None


def note_link_outcome(work: UnitOfWork, job: JobRow, *, success: bool, now: datetime) -> None:
    """Count one ended attempt on the job's link; open, re-open or close its breaker."""
    session = work.session
    policy = policy_of(work.ctx.settings)
    src, dst = job.source_node_id, job.destination_node_id
    key = key_of(Scope.LINK, src, dst)
    known = work.accumulator(KnownBreakers)
    # A link with no row has had no failure: a success there changes nothing.
    if success and not known.has(session, key):
        return
    found = _locked(session, key) if success else _ensure(session, key, Scope.LINK, src, dst)
    known.made(key)
    if found is None:
        return
    row = found
    row.outcomes = remember(row.outcomes, SUCCESS if success else FAILURE, policy.window)
    state = BreakerState(row.state)
    if success and state is BreakerState.CLOSED:
        return
    source, destination = _names(session, src, dst)
    link = f"{source} → {destination}"
    if success:
        if state is not BreakerState.CLOSED:
            row.state = BreakerState.CLOSED.value
            row.outcomes = SUCCESS
            row.opened_at = row.probe_at = row.cool_down_seconds = row.probe_job_id = None
            record(session, job.id, "breaker", f"link {link} closed: this job got through", at=now)
            log.info("link %s closed by job %s", link, job.id)
        return
    if state is BreakerState.PROBING and row.probe_job_id == job.id:
        failed = row.outcomes.count(FAILURE)
        _open(row, policy, now)
        assert row.probe_at is not None
        record(
            session,
            job.id,
            "breaker",
            f"the probe of link {link} failed: paused again until {clock(row.probe_at)}",
            at=now,
        )
        log.info("link %s: probe %s failed (%d failures); paused again", link, job.id, failed)
        return
    if state is BreakerState.CLOSED and policy.trips(row.outcomes):
        _open(row, policy, now)
        assert row.probe_at is not None
        why = link_reason(source, destination, row.outcomes, row.probe_at, None)
        record(session, job.id, "breaker", why, at=now)
        log.warning("%s", why)
        on_operator_event(
            work,
            LINK_OPEN,
            "link.paused",
            why,
            {"link": {"source": source, "destination": destination, "outcomes": row.outcomes}},
            episode=f"{row.key}:{now.isoformat()}",
            at=now,
        )


def hold_destination(work: UnitOfWork, job: JobRow, why: str, *, now: datetime) -> str:
    """Hold every queued job to the job's destination (a full disk); returns the reason."""
    session = work.session
    policy = policy_of(work.ctx.settings)
    dst = job.destination_node_id
    key = key_of(Scope.DESTINATION, None, dst)
    row = _ensure(session, key, Scope.DESTINATION, None, dst)
    work.accumulator(KnownBreakers).made(key)
    (destination,) = _names(session, dst)
    state = BreakerState(row.state)
    if state is BreakerState.OPEN:
        assert row.probe_at is not None
        return hold_reason(destination, row.reason or why, row.probe_at, None)
    if state is BreakerState.PROBING and row.probe_job_id not in (None, job.id):
        assert row.probe_at is not None
        return hold_reason(destination, row.reason or why, row.probe_at, row.probe_job_id)
    _open(row, policy, now)
    row.reason = why
    assert row.probe_at is not None
    reason = hold_reason(destination, why, row.probe_at, None)
    record(session, job.id, "breaker", reason, at=now)
    if state is BreakerState.CLOSED:
        log.warning("%s", reason)
        on_operator_event(
            work,
            DESTINATION_HELD,
            "destination.held",
            reason,
            {"node": {"name": destination, "reason": why}},
            episode=f"{row.key}:{now.isoformat()}",
            at=now,
        )
    return reason


def release_destination(work: UnitOfWork, job: JobRow, *, now: datetime) -> None:
    """A job reached the job's destination: its hold, if any, is over."""
    key = key_of(Scope.DESTINATION, None, job.destination_node_id)
    if not work.accumulator(KnownBreakers).has(work.session, key):
        return
    if rowcount(work.session.execute(delete(BreakerRow).where(BreakerRow.key == key))):
        (destination,) = _names(work.session, job.destination_node_id)
        record(
            work.session,
            job.id,
            "breaker",
            f"destination node {destination} released: this job got through",
            at=now,
        )


def release_node(ctx: ServiceContext, name: str) -> int:
    """An operator's resume: release the node's hold and close the breakers of its links.

    Returns how many breakers it released.
    """
    with ctx.unit_of_work() as work:
        session = work.session
        node_id = node_named(session, name).id
        released = rowcount(
            session.execute(
                delete(BreakerRow).where(
                    BreakerRow.scope == Scope.DESTINATION.value,
                    BreakerRow.destination_node_id == node_id,
                )
            )
        )
        released += rowcount(
            session.execute(
                update(BreakerRow)
                .where(
                    BreakerRow.scope == Scope.LINK.value,
                    (BreakerRow.source_node_id == node_id)
                    | (BreakerRow.destination_node_id == node_id),
                    BreakerRow.state != BreakerState.CLOSED.value,
                )
                .values(
                    state=BreakerState.CLOSED.value,
                    outcomes="",
                    opened_at=None,
                    probe_at=None,
                    cool_down_seconds=None,
                    probe_job_id=None,
                )
            )
        )
        work.commit()
    if released:
        ctx.enqueue(TaskName.DISPATCH)
    return released


@dataclass
class Gates:
    """The open breakers as dispatch sees them in one run."""

    rows: dict[str, BreakerRow] = field(default_factory=dict)
    alive: set[str] = field(default_factory=set)  # probe jobs that may still end on their link

    @classmethod
    def load(cls, session: Session) -> Gates:
        """Every open or probing breaker, locked for this dispatch run."""
        rows = session.scalars(
            select(BreakerRow)
            .where(BreakerRow.state != BreakerState.CLOSED.value)
            .order_by(BreakerRow.key)
            .with_for_update()
        ).all()
        probes = [r.probe_job_id for r in rows if r.probe_job_id is not None]
        alive = set(
            session.scalars(
                select(JobRow.id).where(JobRow.id.in_(probes), JobRow.state.in_(_PROBE_ALIVE))
            )
            if probes
            else ()
        )
        return cls({r.key: r for r in rows}, alive)

    def why_waiting(
        self, job_id: str, src: NodeRow, dst: NodeRow, now: datetime, session: Session
    ) -> str | None:
        """Why the job may not go now; None lets it go (as a breaker's probe when one is due)."""
        gates = [
            self.rows.get(key_of(Scope.DESTINATION, None, dst.id)),
            self.rows.get(key_of(Scope.LINK, src.id, dst.id)),
        ]
        due = []
        for row in gates:
            if row is None or (row.state == BreakerState.PROBING and row.probe_job_id == job_id):
                continue
            assert row.probe_at is not None
            state = BreakerState(row.state)
            if probe_due(state, row.probe_at, row.probe_job_id in self.alive, now):
                due.append(row)
                continue
            probe = row.probe_job_id if state is BreakerState.PROBING else None
            if row.scope == Scope.DESTINATION:
                return hold_reason(dst.name, row.reason or "", row.probe_at, probe)
            return link_reason(src.name, dst.name, row.outcomes, row.probe_at, probe)
        for row in due:
            row.state = BreakerState.PROBING.value
            row.probe_job_id = job_id
            self.alive.add(job_id)
            what = (
                f"destination node {dst.name}"
                if row.scope == Scope.DESTINATION
                else f"link {src.name} → {dst.name}"
            )
            record(session, job_id, "breaker", f"admitted as the probe of {what}", at=now)
        return None


def open_breakers(session: Session) -> list[tuple[str, int | None, int]]:
    """(scope, source node id, destination node id) of every breaker not closed."""
    rows = session.execute(
        select(BreakerRow.scope, BreakerRow.source_node_id, BreakerRow.destination_node_id).where(
            BreakerRow.state != BreakerState.CLOSED.value
        )
    )
    return [(str(s), src, int(dst)) for s, src, dst in rows]
