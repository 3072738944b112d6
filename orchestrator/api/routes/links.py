"""/api/v1/links: rate budgets per node pair, shared live by the transfers on each link."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from orchestrator.api.deps import AdminDep, ContextDep, ReadDep
from orchestrator.api.schemas import LinkBudgetIn, LinkBudgetOut, error_responses
from orchestrator.services.conveyor import linkbudgets
from orchestrator.services.conveyor.linkbudgets import LinkBudget

router = APIRouter(prefix="/api/v1/links", tags=["links"])

ERRORS = error_responses({404: "no such node, or the link has no budget"})


def _out(budget: LinkBudget) -> LinkBudgetOut:
    return LinkBudgetOut(
        source=budget.source,
        destination=budget.destination,
        mbps=budget.kbps / 1000,
        allocated_mbps=budget.allocated_kbps / 1000,
        transfers=budget.transfers,
        paused=budget.paused,
        updated_by=budget.updated_by,
        updated_at=budget.updated_at,
    )


@router.get("", response_model=list[LinkBudgetOut], responses=ERRORS)
def list_all(ctx: ContextDep, _: ReadDep) -> list[LinkBudgetOut]:
    """Every link with a budget, and what its transfers hold of it now."""
    return [_out(budget) for budget in linkbudgets.list_budgets(ctx)]


@router.get("/{source}/{destination}", response_model=LinkBudgetOut, responses=ERRORS)
def show(source: str, destination: str, ctx: ContextDep, _: ReadDep) -> LinkBudgetOut:
    """One link's budget."""
    return _out(linkbudgets.show_budget(ctx, source, destination))


@router.put("/{source}/{destination}", response_model=LinkBudgetOut, responses=ERRORS)
def put(
    source: str, destination: str, body: LinkBudgetIn, ctx: ContextDep, caller: AdminDep
) -> LinkBudgetOut:
    """Give the link a budget (Mbps). From the next poll of the node that runs its transfers,
    they share it: deadlines first (highest priority first), the rest by priority; work a
    higher-priority deadline needs the whole link for is paused, and resumed after."""
    return _out(linkbudgets.set_budget(ctx, source, destination, body.mbps, by=caller.name))


@router.delete("/{source}/{destination}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
def delete(source: str, destination: str, ctx: ContextDep, _: AdminDep) -> Response:
    """Remove the link's budget: transfers it paused are resumed at the next poll."""
    if not linkbudgets.clear_budget(ctx, source, destination):
        raise linkbudgets.NoLinkBudget(f"the link {source} → {destination} has no budget")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
