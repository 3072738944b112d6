"""Maintenance windows of the nodes: add, list and remove them, and the calendar they make."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from orchestrator.db.engine import rowcount
from orchestrator.db.tables import MaintenanceWindowRow, NodeRow
from orchestrator.domain.maintenance import Calendar, MaintenanceSpec, Window
from orchestrator.errors import ConfigError
from orchestrator.services.context import ServiceContext
from orchestrator.services.nodes.registry import node_named
from orchestrator.taskqueue import TaskName


class WindowNotFound(ConfigError):
    """No maintenance window of that node has that id."""


def _window(row: MaintenanceWindowRow, node: str) -> Window:
    return Window(
        id=row.id,
        node=node,
        reason=row.reason,
        cron=row.cron,
        duration_seconds=row.duration_seconds,
        timezone=row.timezone,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
    )


def add_window(ctx: ServiceContext, node: str, spec: MaintenanceSpec) -> Window:
    """Store a window of the node; the dispatcher and the maintenance tick follow it at once."""
    with ctx.sessions() as session:
        row = MaintenanceWindowRow(
            node_id=node_named(session, node).id,
            cron=spec.cron,
            duration_seconds=spec.duration_seconds,
            timezone=spec.timezone,
            starts_at=spec.start,
            ends_at=spec.end,
            reason=spec.reason,
            created_at=ctx.now(),
        )
        session.add(row)
        session.commit()
        window = _window(row, node)
    ctx.enqueue(TaskName.MAINTENANCE_TICK)
    return window


def windows_of(ctx: ServiceContext, node: str) -> list[Window]:
    """The node's windows, oldest first."""
    with ctx.sessions() as session:
        node_id = node_named(session, node).id
        rows = session.scalars(
            select(MaintenanceWindowRow)
            .where(MaintenanceWindowRow.node_id == node_id)
            .order_by(MaintenanceWindowRow.id)
        )
        return [_window(row, node) for row in rows]


def remove_window(ctx: ServiceContext, node: str, window_id: int) -> None:
    """Delete one of the node's windows; what it paused is resumed by the next tick."""
    with ctx.sessions() as session:
        node_id = node_named(session, node).id
        gone = session.execute(
            delete(MaintenanceWindowRow).where(
                MaintenanceWindowRow.id == window_id, MaintenanceWindowRow.node_id == node_id
            )
        )
        if rowcount(gone) == 0:
            raise WindowNotFound(f"node {node!r} has no maintenance window {window_id}")
        session.commit()
    ctx.enqueue(TaskName.MAINTENANCE_TICK)


def all_windows(session: Session) -> list[tuple[int, Window]]:
    """Every window, with its node's id."""
    rows = session.execute(
        select(MaintenanceWindowRow, NodeRow.name).join(
            NodeRow, NodeRow.id == MaintenanceWindowRow.node_id
        )
    ).all()
    return [(row.node_id, _window(row, name)) for row, name in rows]


def calendar(session: Session, now: datetime) -> Calendar:
    """Every node's current and next maintenance at ``now``."""
    return Calendar.at(all_windows(session), now)
