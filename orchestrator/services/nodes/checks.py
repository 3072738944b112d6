"""Is a node there, and what is it: ping and /info, reported rather than raised."""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.errors import NodeError
from orchestrator.logsetup import redact
from orchestrator.services.context import ServiceContext
from orchestrator.services.nodes.registry import node_named


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
    error: str | None = None


def check_node(ctx: ServiceContext, name: str) -> NodeCheck:
    """Ping the node and read /info; the node's errors are reported, not raised (a registry
    entry that cannot be used at all raises NodeConfigurationError)."""
    with ctx.sessions() as session:
        node_id = node_named(session, name).id
    client = ctx.clients.get(node_id)  # NodeConfigurationError: the entry is unusable (422)
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
    )
