"""Nodes as readers see them: settings without the secret, and what the poller last saw."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from orchestrator.db.tables import NodeCursorRow, NodeRow
from orchestrator.services.context import ServiceContext
from orchestrator.services.nodes.registry import node_named


@dataclass
class NodeView:
    """A node without its secret, with what its poller last saw."""

    name: str
    base_url: str
    auth_kind: str
    username: str
    ca_bundle: str | None
    insecure: bool
    transfer_host: str | None
    root_path: str
    max_outbound: int
    max_inbound: int
    activity_retention_seconds: int
    enabled: bool
    last_poll_at: datetime | None
    last_error: str | None


def _view(row: NodeRow, cursor: NodeCursorRow | None) -> NodeView:
    return NodeView(
        name=row.name,
        base_url=row.base_url,
        auth_kind=row.auth_kind,
        username=row.username,
        ca_bundle=row.ca_bundle,
        insecure=row.insecure,
        transfer_host=row.transfer_host,
        root_path=row.root_path,
        max_outbound=row.max_outbound,
        max_inbound=row.max_inbound,
        activity_retention_seconds=row.activity_retention_seconds,
        enabled=row.enabled,
        last_poll_at=cursor.last_poll_at if cursor else None,
        last_error=cursor.last_error if cursor else None,
    )


def show_node(ctx: ServiceContext, name: str) -> NodeView:
    """One node."""
    with ctx.sessions() as session:
        row = node_named(session, name)
        return _view(row, session.get(NodeCursorRow, row.id))


def list_nodes(ctx: ServiceContext) -> list[NodeView]:
    """Every node, by name."""
    with ctx.sessions() as session:
        rows = session.execute(
            select(NodeRow, NodeCursorRow)
            .outerjoin(NodeCursorRow, NodeCursorRow.node_id == NodeRow.id)
            .order_by(NodeRow.name)
        ).all()
        return [_view(row, cursor) for row, cursor in rows]
