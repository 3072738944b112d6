"""Adaptive per-link concurrency: measure each busy link, decide (domain/concurrency.py), keep.

A link's throughput is what it moved between two decisions: the bytes the poller tallied for
the node pair (throughput.py's per-minute rows, written with each progress write) since the
last decision, over the time between them. The sum is taken over the minutes from the one the
last decision fell in, both then (kept as ``bytes_mark``) and now, so bytes tallied earlier in
that minute cancel out. The node's own per-transfer ``avg_rate_kbps`` is an average over the
transfer's life and lags a change of shares, so it is not used. A link's first round only sets
the mark, and after a decision that moves the limit, the next interval starts once the link
runs as many of ours as the new limit (or has nothing more to run; at the latest an interval
later), so a measure never mixes two limits. Each decision is logged and kept with its
reason, which dispatch quotes to the jobs it holds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orchestrator.db.tables import AttemptRow, JobRow, LinkConcurrencyRow, ThroughputMinuteRow
from orchestrator.domain.concurrency import (
    HELD,
    Decision,
    LinkConcurrency,
    LinkMeasure,
    decide,
)
from orchestrator.domain.states import HOLDS_A_SLOT, JobState
from orchestrator.services.context import ServiceContext
from orchestrator.services.conveyor.throughput import minute_of
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
    interval = ctx.settings.adaptive_interval_seconds
    due_before = now - timedelta(seconds=interval)
    with ctx.unit_of_work() as work:
        session = work.session
        names = node_names(session)
        rows = link_limits(session)
        for link, (actives, waiting) in _links_with_work(session).items():
            row = rows.get(link)
            label = f"{names.get(link[0], link[0])}→{names.get(link[1], link[1])}"
            if row is None:  # the first round: the limit to start from, and the byte mark
                row = LinkConcurrencyRow(
                    source_node_id=link[0],
                    destination_node_id=link[1],
                    active_limit=starting_limit(ctx),
                    last_step=HELD,
                    quiet=0,
                )
                session.add(row)
                _mark(session, row, link, now)
                summary.decisions.append(f"{label}: measuring from {row.active_limit}")
                continue
            if row.bytes_mark is None:  # the limit just moved: measure once it is in effect
                in_effect = actives == row.active_limit or (
                    waiting == 0 and actives < row.active_limit
                )
                if in_effect or row.decided_at <= due_before:
                    _mark(session, row, link, now)
                continue
            if row.decided_at > due_before:
                continue
            seen = LinkMeasure(
                _moved_kbps(session, row, link, now),
                actives,
                waiting,
                *_endings(session, link, row.decided_at),
            )
            before = LinkConcurrency(row.active_limit, row.last_kbps, row.last_step, row.quiet)
            decision = decide(
                before,
                seen,
                ceiling=ctx.settings.max_per_link,
                min_gain=ctx.settings.adaptive_min_gain,
            )
            _keep(row, decision)
            _mark(session, row, link, now)
            if decision.state.limit != before.limit:
                row.bytes_mark = None  # the next interval starts once the new limit holds
            summary.decisions.append(f"{label}: {decision.reason}")
            if decision.state.limit != before.limit:
                summary.changed = True
            if decision.step != HELD:
                log.info("link %s %s", label, decision.reason, extra={"link": label})
        work.commit()
    return summary


def _keep(row: LinkConcurrencyRow, decision: Decision) -> None:
    state = decision.state
    row.active_limit = state.limit
    row.last_kbps = state.last_kbps
    row.last_step = state.last_step
    row.quiet = state.quiet
    if decision.step != HELD or row.reason is None:  # a reason names the last move
        row.reason = decision.reason


def _tallied_since(session: Session, link: Link, at: datetime) -> int:
    """Bytes tallied for the node pair in the minutes from the one ``at`` falls in."""
    total = session.scalar(
        select(func.sum(ThroughputMinuteRow.bytes)).where(
            ThroughputMinuteRow.source_node_id == link[0],
            ThroughputMinuteRow.destination_node_id == link[1],
            ThroughputMinuteRow.minute >= minute_of(at),
        )
    )
    return int(total or 0)


def _mark(session: Session, row: LinkConcurrencyRow, link: Link, now: datetime) -> None:
    """Start the next interval: now, and the bytes tallied so far in this minute and after."""
    row.decided_at = now
    row.bytes_mark = _tallied_since(session, link, now)


def _moved_kbps(session: Session, row: LinkConcurrencyRow, link: Link, now: datetime) -> float:
    """What the link moved since the last decision, in kbps."""
    seconds = (now - row.decided_at).total_seconds()
    moved = _tallied_since(session, link, row.decided_at) - (row.bytes_mark or 0)
    return max(0, moved) * 8 / 1000 / seconds if seconds > 0 else 0.0


def _links_with_work(session: Session) -> dict[Link, tuple[int, int]]:
    """Each link with our jobs queued or under way: (transfers the node runs, jobs queued)."""
    pair = (JobRow.source_node_id, JobRow.destination_node_id)
    running = {
        (s, d): int(n)
        for s, d, n in session.execute(
            select(*pair, func.count())
            .join(AttemptRow, AttemptRow.job_id == JobRow.id)
            .where(
                JobRow.state == JobState.RUNNING,
                AttemptRow.ended_at.is_(None),
                AttemptRow.status == "running",
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
    return {
        link: (running.get(link, 0), waiting.get(link, 0))
        for link in running.keys() | waiting.keys() | holding
    }


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
