"""Adaptive per-link concurrency: measure each busy link, decide (domain/concurrency.py), keep.

A link's throughput is the sum of the rates the source node reports for our running transfers
on it (the feed's ``calc_rate_kbps``, already stored per attempt by the poller): it follows a
change of the number of actives within one poll, where the per-minute byte counts
(throughput.py) and the per-link EMA of finished transfers (linkrates.py) lag by minutes.
A transfer counts as active once the node reports a rate for it, so a decision never weighs a
transfer that has only just started. Each decision is logged and kept with its reason, which
dispatch quotes to the jobs it holds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orchestrator.db.tables import AttemptRow, JobRow, LinkConcurrencyRow
from orchestrator.domain.concurrency import (
    HELD,
    Decision,
    LinkConcurrency,
    LinkMeasure,
    decide,
)
from orchestrator.domain.states import HOLDS_A_SLOT, JobState
from orchestrator.services.context import ServiceContext
from orchestrator.services.nodes.registry import node_names

log = logging.getLogger(__name__)

Link = tuple[int, int]


@dataclass
class TuneSummary:
    """The decisions of one round, as "a→b: raised from 3: …"."""

    decisions: list[str] = field(default_factory=list)
    changed: bool = False  # some link's limit moved

    def __str__(self) -> str:
        return "; ".join(self.decisions) if self.decisions else "no link to tune"


def starting_limit(ctx: ServiceContext) -> int:
    """A link's limit before its first decision."""
    return min(ctx.settings.adaptive_start, ctx.settings.max_per_link)


def link_limits(session: Session) -> dict[Link, LinkConcurrencyRow]:
    """Every link's adaptive state."""
    return {
        (row.source_node_id, row.destination_node_id): row
        for row in session.scalars(select(LinkConcurrencyRow))
    }


def tune_links(ctx: ServiceContext) -> TuneSummary:
    """One decision for each link with work on it whose last decision is an interval old."""
    summary = TuneSummary()
    if not ctx.settings.adaptive_concurrency:
        return summary
    now = ctx.now()
    due_before = now - timedelta(seconds=ctx.settings.adaptive_interval_seconds)
    with ctx.unit_of_work() as work:
        session = work.session
        names = node_names(session)
        rows = link_limits(session)
        for link, seen in _measure(session, rows, now).items():
            row = rows.get(link)
            if row is not None and row.decided_at > due_before:
                continue
            before = (
                LinkConcurrency(starting_limit(ctx))
                if row is None
                else LinkConcurrency(row.active_limit, row.last_kbps, row.last_step, row.quiet)
            )
            decision = decide(
                before,
                seen,
                ceiling=ctx.settings.max_per_link,
                min_gain=ctx.settings.adaptive_min_gain,
            )
            _keep(session, link, row, decision, now)
            label = f"{names.get(link[0], link[0])}→{names.get(link[1], link[1])}"
            summary.decisions.append(f"{label}: {decision.reason}")
            if decision.state.limit != before.limit:
                summary.changed = True
            if decision.step != HELD:
                log.info("link %s %s", label, decision.reason, extra={"link": label})
        work.commit()
    return summary


def _keep(
    session: Session, link: Link, row: LinkConcurrencyRow | None, decision: Decision, now: datetime
) -> None:
    state = decision.state
    if row is None:
        row = LinkConcurrencyRow(source_node_id=link[0], destination_node_id=link[1])
        session.add(row)
    row.active_limit = state.limit
    row.last_kbps = state.last_kbps
    row.last_step = state.last_step
    row.quiet = state.quiet
    row.decided_at = now
    if decision.step != HELD or row.reason is None:  # a reason names the last move
        row.reason = decision.reason


def _measure(
    session: Session, rows: dict[Link, LinkConcurrencyRow], now: datetime
) -> dict[Link, LinkMeasure]:
    """Each link with our jobs queued or under way: throughput, actives, waiting, endings."""
    pair = (JobRow.source_node_id, JobRow.destination_node_id)
    running = {
        (s, d): (float(kbps or 0.0), int(n))
        for s, d, kbps, n in session.execute(
            select(*pair, func.sum(AttemptRow.rate_kbps), func.count())
            .join(AttemptRow, AttemptRow.job_id == JobRow.id)
            .where(
                JobRow.state == JobState.RUNNING,
                AttemptRow.ended_at.is_(None),
                AttemptRow.status == "running",
                AttemptRow.rate_kbps > 0,  # a transfer just started has no rate yet
            )
            .group_by(*pair)
        )
    }
    waiting = {
        (s, d): int(n)
        for s, d, n in session.execute(
            select(*pair, func.count()).where(JobRow.state == JobState.QUEUED).group_by(*pair)
        )
    }
    holding = {
        (s, d)
        for s, d in session.execute(
            select(*pair).where(JobRow.state.in_(HOLDS_A_SLOT)).group_by(*pair)
        )
    }
    measures: dict[Link, LinkMeasure] = {}
    for link in running.keys() | waiting.keys() | holding:
        kbps, actives = running.get(link, (0.0, 0))
        row = rows.get(link)
        failed, ended = _endings(session, link, row.decided_at if row else now)
        measures[link] = LinkMeasure(kbps, actives, waiting.get(link, 0), failed, ended)
    return measures


def _endings(session: Session, link: Link, since: datetime) -> tuple[int, int]:
    """(failed, ended) of our transfers on the link since the last decision."""
    rows = session.execute(
        select(AttemptRow.status, func.count())
        .join(JobRow, AttemptRow.job_id == JobRow.id)
        .where(
            JobRow.source_node_id == link[0],
            JobRow.destination_node_id == link[1],
            AttemptRow.ended_at > since,
        )
        .group_by(AttemptRow.status)
    )
    counts = dict(rows.all())
    return int(counts.get("failed", 0)), int(sum(counts.values()))
