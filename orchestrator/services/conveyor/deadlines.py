"""Deadlines in the conveyor: the estimate at submit, the ETA kept while a transfer runs, the
flag when it will be late, and the record when it ended late."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from orchestrator.db.tables import AttemptRow, JobRow, NodeRow
from orchestrator.domain.deadlines import (
    Admission,
    eta_moved,
    finish_at,
    lateness,
    risk_text,
    transfer_rate,
)
from orchestrator.domain.states import UNDER_WAY, JobState
from orchestrator.domain.transfers import bytes_per_second
from orchestrator.services.context import ServiceContext, UnitOfWork
from orchestrator.services.conveyor.linkrates import LinkRateTally, link_rate
from orchestrator.services.conveyor.sourcecheck import Verdict, check_sources
from orchestrator.services.events import record

log = logging.getLogger(__name__)


def source_size(ctx: ServiceContext, node: NodeRow, paths: list[str]) -> Verdict | None:
    """What the source node says about a job's paths before it exists (one /files/info), or
    None when it cannot say; a folder has no size there (see sourcecheck)."""
    probe = JobRow(id="-", source_root=node.root_path, source_paths=[{"source": p} for p in paths])
    return check_sources(ctx, [(probe, node)]).get("-")


def bytes_ahead(session: Session, source_id: int, destination_id: int, priority: int) -> int:
    """Bytes still to move on the link before a new job of ``priority``: every job under way
    there, and the queued ones it would not overtake (higher or equal priority, all older).
    A job whose size is not known yet counts as nothing."""
    left = case(
        (
            JobRow.bytes_expected > JobRow.bytes_transferred,
            JobRow.bytes_expected - JobRow.bytes_transferred,
        ),
        else_=0,
    )
    total = session.scalar(
        select(func.coalesce(func.sum(left), 0)).where(
            JobRow.source_node_id == source_id,
            JobRow.destination_node_id == destination_id,
            JobRow.is_parent.is_(False),  # a fan-out's parts are counted, on their own links
            or_(
                JobRow.state.in_(UNDER_WAY),
                and_(JobRow.state == JobState.QUEUED, JobRow.priority >= priority),
            ),
        )
    )
    return int(total or 0)


def admission(
    session: Session,
    source: NodeRow,
    destination: NodeRow,
    *,
    priority: int,
    deadline: datetime,
    own_bytes: int | None,
) -> Admission:
    """What the link's measured rate and the work ahead say about a new job's deadline."""
    return Admission(
        link=f"{source.name} → {destination.name}",
        deadline=deadline,
        rate=link_rate(session, source.id, destination.id),
        bytes_ahead=bytes_ahead(session, source.id, destination.id, priority),
        own_bytes=own_bytes,
    )


def follow_running(work: UnitOfWork, job: JobRow, now: datetime) -> None:
    """Keep a running job's ETA (written only when it moves by more than a few seconds, with
    the progress the poll writes anyway) and its at-risk flag, with an event when it flips."""
    rate = bytes_per_second(job.rate_kbps)
    if not job.bytes_expected or not rate:
        return  # paused, or no size yet: the last ETA stands
    left = max(0, job.bytes_expected - job.bytes_transferred)
    eta = finish_at(now, rate, left)
    if eta is None or not eta_moved(job.eta, eta):
        return
    job.eta = eta
    if job.deadline is None:
        return
    late = eta > job.deadline
    if late and not job.at_risk:
        job.at_risk = True
        text = risk_text(now, eta, job.deadline, job.rate_kbps or 0.0, left)
        record(work.session, job.id, "deadline", text, at=now)
    elif not late and job.at_risk:
        job.at_risk = False
        record(work.session, job.id, "deadline", "back on track for its deadline", at=now)


def note_end(
    work: UnitOfWork, job: JobRow, attempt: AttemptRow, target: JobState, now: datetime
) -> None:
    """At a job's end: its transfer's rate joins the link's EMA (when it completed), and a
    deadline it ended after is recorded."""
    if target is JobState.COMPLETED:
        rate = transfer_rate(attempt.bytes_transferred, attempt.started_at, attempt.ended_at)
        if rate is not None:
            work.accumulator(LinkRateTally).add(
                now, job.source_node_id, job.destination_node_id, rate
            )
    if job.deadline is not None and target is not JobState.CANCELED and now > job.deadline:
        record(work.session, job.id, "deadline", lateness(now, job.deadline), at=now)
