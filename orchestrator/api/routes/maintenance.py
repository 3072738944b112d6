"""/api/v1/nodes/{name}/maintenance: the node's maintenance windows."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from orchestrator.api.deps import AdminDep, ContextDep, ReadDep
from orchestrator.api.maintenance_schemas import MaintenanceCreate, MaintenanceOut
from orchestrator.api.schemas import error_responses
from orchestrator.domain.maintenance import Window
from orchestrator.services.context import ServiceContext
from orchestrator.services.nodes.maintenance import add_window, remove_window, windows_of

router = APIRouter(prefix="/api/v1/nodes", tags=["nodes"])

WindowId = Annotated[int, Path(ge=1, le=2**31 - 1, description="the window's id")]
ERRORS = error_responses({404: "no such node, or no such window of the node"})


def _out(ctx: ServiceContext, window: Window) -> MaintenanceOut:
    now = ctx.now()
    current = window.current(now)
    upcoming = window.upcoming(now)
    return MaintenanceOut(
        id=window.id,
        node=window.node,
        reason=window.reason,
        cron=window.cron,
        duration_seconds=window.duration_seconds,
        timezone=window.timezone,
        start=window.starts_at,
        end=window.ends_at,
        description=window.describe(),
        in_progress_until=current.end if current else None,
        next_start=upcoming.start if upcoming else None,
    )


@router.post(
    "/{name}/maintenance",
    status_code=status.HTTP_201_CREATED,
    response_model=MaintenanceOut,
    responses=ERRORS,
)
def add(name: str, body: MaintenanceCreate, ctx: ContextDep, _: AdminDep) -> MaintenanceOut:
    """Add a maintenance window: before it, work that cannot finish in time waits; during it,
    the node's transfers are paused and its queued jobs held; after it, they resume."""
    return _out(ctx, add_window(ctx, name, body))


@router.get("/{name}/maintenance", response_model=list[MaintenanceOut], responses=ERRORS)
def list_windows(name: str, ctx: ContextDep, _: ReadDep) -> list[MaintenanceOut]:
    """The node's maintenance windows, oldest first, with their next start."""
    return [_out(ctx, window) for window in windows_of(ctx, name)]


@router.delete(
    "/{name}/maintenance/{window_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=ERRORS,
)
def remove(name: str, window_id: WindowId, ctx: ContextDep, _: AdminDep) -> Response:
    """Remove a window; what it paused resumes at the next maintenance tick."""
    remove_window(ctx, name, window_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
