"""Is a node there, and what is it: ping and /info, reported rather than raised, and recorded."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from orchestrator.db.tables import NodeHealthRow, NodeRow
from orchestrator.domain.admission import reported_session_limit
from orchestrator.domain.sshendpoints import SSH
from orchestrator.errors import NodeError
from orchestrator.logsetup import redact
from orchestrator.nodeapi.client import NodeClient
from orchestrator.services.context import ServiceContext
from orchestrator.services.nodes.registry import node_named
from orchestrator.services.nodes.sshprobe import probe

VERSION_CHARS = 64  # what node_health.version holds


@dataclass
class NodeCheck:
    """What ping and /info said."""

    name: str
    reachable: bool
    version: str | None = None
    node_id: str | None = None
    transfer_user: str | None = None
    activity_logging: bool | None = None
    capabilities: dict[str, object] = field(default_factory=dict)
    session_limit: int | None = None  # when its /info states one
    error: str | None = None


def ask(client: NodeClient, name: str) -> NodeCheck:
    """Ping the node and read /info; the node's errors come back in the result."""
    try:
        client.ping()
        info = client.info()
    except NodeError as exc:
        # The node's own words: a node that echoes the request may quote a credential.
        return NodeCheck(name=name, reachable=False, error=redact(str(exc)))
    return NodeCheck(
        name=name,
        reachable=True,
        version=info.version,
        node_id=info.node_id,
        transfer_user=info.transfer_user,
        activity_logging=info.activity_logging,
        capabilities=dict(info.capabilities),
        session_limit=reported_session_limit(info.settings, info.capabilities),
    )


def ask_ssh(name: str, host: str, port: int, timeout: float) -> NodeCheck:
    """An SSH endpoint's check: whether its SSH port accepts a connection (no Node API)."""
    error = probe(host, port, timeout)
    return NodeCheck(name=name, reachable=error is None, error=error)


def record_check(session: Session, node_id: int, check: NodeCheck, at: datetime) -> None:
    """Keep a check as the node's health (the caller commits); a reachability fact only."""
    row = session.get(NodeHealthRow, node_id)
    if row is None:
        row = NodeHealthRow(node_id=node_id)
        session.add(row)
    row.checked_at = at
    row.reachable = check.reachable
    if check.reachable:  # an unreachable node keeps the version it last said
        row.version = (check.version or "")[:VERSION_CHARS] or None
        row.activity_logging = check.activity_logging
        row.session_limit = check.session_limit
    row.error = check.error


def check_node(ctx: ServiceContext, name: str) -> NodeCheck:
    """Ping the node and read /info (an SSH endpoint: connect to its SSH port), and record the
    outcome as its health; the node's errors are reported, not raised (a registry entry that
    cannot be used at all raises NodeConfigurationError)."""
    with ctx.sessions() as session:
        row = node_named(session, name)
        node_id, kind, host, port = row.id, row.kind, row.transfer_host, row.ssh_port
    if kind == SSH:  # no Node API: whether its SSH port answers
        check = ask_ssh(name, host or "", port or 0, ctx.settings.node_connect_timeout)
    else:
        client = ctx.clients.get(node_id)  # NodeConfigurationError: the entry is unusable (422)
        check = ask(client, name)
    with ctx.sessions() as session:
        if session.get(NodeRow, node_id) is not None:  # not removed meanwhile
            record_check(session, node_id, check, ctx.now())
            session.commit()
    return check
