"""Link budgets: the rate an operator gives a node pair, shared live by its transfers
(``allocation``). Set, listed and cleared by name; stored in kbps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from orchestrator.db.tables import AttemptRow, JobRow, LinkBudgetRow
from orchestrator.domain.states import POSTED
from orchestrator.services.context import ServiceContext
from orchestrator.services.nodes.registry import node_named, node_names

MAX_MBPS = 1_000_000  # 1 Tbps: more than any link, less than a typo's worth of zeros


class NoLinkBudget(LookupError):
    """The link has no budget."""


@dataclass(frozen=True)
class LinkBudget:
    """A node pair's budget as readers see it, with the share its transfers hold now."""

    source: str
    destination: str
    kbps: int
    allocated_kbps: int  # the sum of the rates last sent to its running transfers
    transfers: int  # its transfers under the allocator (running or paused by it)
    paused: int  # of which paused by the allocator
    updated_by: str | None
    updated_at: datetime


def set_budget(
    ctx: ServiceContext, source: str, destination: str, mbps: float, *, by: str | None = None
) -> LinkBudget:
    """Give the link ``source → destination`` a budget of ``mbps`` (replacing any before)."""
    if not 0 < mbps <= MAX_MBPS:
        raise ValueError(f"mbps: give a rate above 0 and at most {MAX_MBPS} Mbps, not {mbps}")
    kbps = max(1, round(mbps * 1000))
    with ctx.sessions() as session:
        src, dst = node_named(session, source), node_named(session, destination)
        if src.id == dst.id:
            raise ValueError("destination: a link joins two different nodes")
        row = session.get(LinkBudgetRow, (src.id, dst.id))
        if row is None:
            row = LinkBudgetRow(source_node_id=src.id, destination_node_id=dst.id)
            session.add(row)
        row.kbps, row.updated_by, row.updated_at = kbps, by, ctx.now()
        session.commit()
    return show_budget(ctx, source, destination)


def clear_budget(ctx: ServiceContext, source: str, destination: str) -> bool:
    """Remove the link's budget (its paused transfers are resumed at the next poll); False
    when it had none."""
    with ctx.sessions() as session:
        src, dst = node_named(session, source), node_named(session, destination)
        gone = session.execute(
            delete(LinkBudgetRow).where(
                LinkBudgetRow.source_node_id == src.id,
                LinkBudgetRow.destination_node_id == dst.id,
            )
        )
        session.commit()
        return bool(getattr(gone, "rowcount", 0))


def show_budget(ctx: ServiceContext, source: str, destination: str) -> LinkBudget:
    """One link's budget; NoLinkBudget when it has none."""
    with ctx.sessions() as session:
        src, dst = node_named(session, source), node_named(session, destination)
        row = session.get(LinkBudgetRow, (src.id, dst.id))
        if row is None:
            raise NoLinkBudget(
                f"the link {source} → {destination} has no budget (see: nodes link-budget list)"
            )
        return _views(session, [row])[0]


def list_budgets(ctx: ServiceContext) -> list[LinkBudget]:
    """Every link with a budget, by source then destination name."""
    with ctx.sessions() as session:
        rows = list(session.scalars(select(LinkBudgetRow)))
        return sorted(_views(session, rows), key=lambda b: (b.source, b.destination))


@dataclass(frozen=True)
class BudgetFigures:
    """A budgeted link's numbers by node id (what /metrics and the views read)."""

    source_node_id: int
    destination_node_id: int
    kbps: int
    allocated_kbps: int
    transfers: int
    paused: int


def budget_figures(session: Session) -> list[BudgetFigures]:
    """Each budgeted link with the rates last sent to its open transfers (those the
    allocator paused count as transfers, not as rate)."""
    held = {
        (int(r[0]), int(r[1])): (int(r[2] or 0), int(r[3] or 0), int(r[4] or 0))
        for r in session.execute(
            select(
                JobRow.source_node_id,
                JobRow.destination_node_id,
                func.sum(AttemptRow.allocated_kbps).filter(AttemptRow.policy_paused.is_(False)),
                func.count(AttemptRow.id),
                func.count(AttemptRow.id).filter(AttemptRow.policy_paused.is_(True)),
            )
            .join(
                AttemptRow,
                (AttemptRow.job_id == JobRow.id) & (AttemptRow.number == JobRow.attempt_count),
            )
            .where(
                JobRow.state.in_(POSTED),
                AttemptRow.ended_at.is_(None),
                AttemptRow.allocated_at.is_not(None),
            )
            .group_by(JobRow.source_node_id, JobRow.destination_node_id)
        )
    }
    figures = []
    for row in session.scalars(select(LinkBudgetRow)):
        link = (row.source_node_id, row.destination_node_id)
        allocated, transfers, paused = held.get(link, (0, 0, 0))
        figures.append(BudgetFigures(*link, row.kbps, allocated, transfers, paused))
    return figures


def _views(session: Session, rows: list[LinkBudgetRow]) -> list[LinkBudget]:
    names = node_names(session)
    figures = {(f.source_node_id, f.destination_node_id): f for f in budget_figures(session)}
    views = []
    for row in rows:
        figure = figures[(row.source_node_id, row.destination_node_id)]
        views.append(
            LinkBudget(
                source=names.get(row.source_node_id, "?"),
                destination=names.get(row.destination_node_id, "?"),
                kbps=row.kbps,
                allocated_kbps=figure.allocated_kbps,
                transfers=figure.transfers,
                paused=figure.paused,
                updated_by=row.updated_by,
                updated_at=row.updated_at,
            )
        )
    return views
