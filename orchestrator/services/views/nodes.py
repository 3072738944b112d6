"""Nodes as readers see them: settings without the secret, what the poller last saw, the
last health check (ping and /info), and their maintenance."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from orchestrator.db.tables import NodeCursorRow, NodeHealthRow, NodeLoadRow, NodeRow
from orchestrator.domain.maintenance import Calendar
from orchestrator.domain.nodes import Reachability, reachability
from orchestrator.services.context import ServiceContext
from orchestrator.services.nodes.maintenance import calendar
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
    reachable: bool | None  # by the newest of the last poll and the last check; None: unknown
    reachable_as_of: datetime | None
    checked_at: datetime | None  # the last health check
    version: str | None  # the node's software version, from its /info
    check_error: str | None  # why the last check found it unreachable
    kind: str = "node_api"  # node_api | ssh (an SSH endpoint: a destination without Node API)
    ssh_port: int | None = None
    sshfp: str | None = None
    maintenance: str | None = None  # under way, or the next window within a week
    session_limit: int | None = None  # what its /info says it runs at once, when it says it
    other_clients_transfers: int | None = None  # its transfers for others, when last counted
    counted_at: datetime | None = None


def node_reachability(cursor: NodeCursorRow | None, health: NodeHealthRow | None) -> Reachability:
    """Whether the node answers, by its last poll or its last health check, whichever is newer."""
    return reachability(
        poll_ok_at=cursor.last_success_at if cursor else None,
        poll_failed_at=cursor.last_poll_at if cursor else None,
        poll_error=cursor.last_error if cursor else None,
        checked_at=health.checked_at if health else None,
        check_ok=health.reachable if health else None,
        check_error=health.error if health else None,
    )


def _view(
    row: NodeRow,
    cursor: NodeCursorRow | None,
    health: NodeHealthRow | None,
    windows: Calendar,
    load: NodeLoadRow | None = None,
) -> NodeView:
    seen = node_reachability(cursor, health)
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
        reachable=seen.reachable,
        reachable_as_of=seen.as_of,
        checked_at=health.checked_at if health else None,
        version=health.version if health else None,
        check_error=health.error if health and not health.reachable else None,
        kind=row.kind,
        ssh_port=row.ssh_port,
        sshfp=row.sshfp,
        maintenance=windows.note(row.id),
        session_limit=health.session_limit if health else None,
        other_clients_transfers=load.others if load else None,
        counted_at=load.counted_at if load else None,
    )


def show_node(ctx: ServiceContext, name: str) -> NodeView:
    """One node."""
    with ctx.sessions() as session:
        row = node_named(session, name)
        return _view(
            row,
            session.get(NodeCursorRow, row.id),
            session.get(NodeHealthRow, row.id),
            calendar(session, ctx.now()),
            session.get(NodeLoadRow, row.id),
        )


def list_nodes(ctx: ServiceContext) -> list[NodeView]:
    """Every node, by name."""
    with ctx.sessions() as session:
        rows = session.execute(
            select(NodeRow, NodeCursorRow, NodeHealthRow, NodeLoadRow)
            .outerjoin(NodeCursorRow, NodeCursorRow.node_id == NodeRow.id)
            .outerjoin(NodeHealthRow, NodeHealthRow.node_id == NodeRow.id)
            .outerjoin(NodeLoadRow, NodeLoadRow.node_id == NodeRow.id)
            .order_by(NodeRow.name)
        ).all()
        windows = calendar(session, ctx.now())
        return [_view(row, cursor, health, windows, load) for row, cursor, health, load in rows]
