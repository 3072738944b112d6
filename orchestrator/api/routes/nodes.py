"""/api/v1/nodes: the node registry (admin) and what the API knows about each node."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from orchestrator.api.deps import AdminDep, ContextDep, ReadDep
from orchestrator.api.schemas import (
    AnyNodeCreate,
    NodeCheckOut,
    NodeOut,
    NodeUpdate,
    SshEndpointCreate,
    error_responses,
)
from orchestrator.domain.nodes import NodeRegistration
from orchestrator.services.conveyor import breakers
from orchestrator.services.nodes import registry
from orchestrator.services.nodes.checks import check_node
from orchestrator.services.views.nodes import NodeView, list_nodes, show_node

router = APIRouter(prefix="/api/v1/nodes", tags=["nodes"])

ERRORS = error_responses({404: "no such node", 409: "name taken, or jobs refer to the node"})


def _out(view: NodeView) -> NodeOut:
    return NodeOut.model_validate(view, from_attributes=True)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=NodeOut, responses=ERRORS)
def register(body: AnyNodeCreate, ctx: ContextDep, _: AdminDep) -> NodeOut:
    """Register a node; its secret is encrypted at rest and never shown again.

    With ``"kind": "ssh"``, an SSH endpoint: a destination with no Node API, reached by its
    transfer user's ``ssh_password`` or ``ssh_private_key`` (PEM), its host key pinned by
    ``sshfp``. It can only be a destination."""
    if isinstance(body, SshEndpointCreate):
        registry.register_ssh_endpoint(ctx, body)
    else:
        registry.register_node(
            ctx, NodeRegistration.model_validate(body.model_dump(exclude={"kind"}))
        )
    return _out(show_node(ctx, body.name))


@router.get("", response_model=list[NodeOut], responses=ERRORS)
def list_all(ctx: ContextDep, _: ReadDep) -> list[NodeOut]:
    """Every node, with its last poll and last error."""
    return [_out(view) for view in list_nodes(ctx)]


@router.get("/{name}", response_model=NodeOut, responses=ERRORS)
def show(name: str, ctx: ContextDep, _: ReadDep) -> NodeOut:
    """One node."""
    return _out(show_node(ctx, name))


@router.patch("/{name}", response_model=NodeOut, responses=ERRORS)
def update(name: str, body: NodeUpdate, ctx: ContextDep, _: AdminDep) -> NodeOut:
    """Change a node's settings (a new secret replaces the old one)."""
    nullable = {"ca_bundle", "transfer_host", "sshfp"}
    changes = {
        key: value
        for key, value in body.model_dump(exclude_unset=True).items()
        if value is not None or key in nullable
    }
    registry.update_node(ctx, name, changes)
    return _out(show_node(ctx, name))


@router.post("/{name}/disable", response_model=NodeOut, responses=ERRORS)
def disable(name: str, ctx: ContextDep, _: AdminDep) -> NodeOut:
    """Stop admitting jobs to or from the node (running transfers go on)."""
    registry.update_node(ctx, name, {"enabled": False})
    return _out(show_node(ctx, name))


@router.post("/{name}/enable", response_model=NodeOut, responses=ERRORS)
def enable(name: str, ctx: ContextDep, _: AdminDep) -> NodeOut:
    """Admit jobs to and from the node again (after maintenance)."""
    registry.update_node(ctx, name, {"enabled": True})
    return _out(show_node(ctx, name))


@router.post("/{name}/resume", response_model=NodeOut, responses=ERRORS)
def resume(name: str, ctx: ContextDep, _: AdminDep) -> NodeOut:
    """Release a held destination (full disk) and close the circuit breakers of its links."""
    breakers.release_node(ctx, name)
    return _out(show_node(ctx, name))


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
def delete(name: str, ctx: ContextDep, _: AdminDep) -> Response:
    """Remove a node no job refers to (disable it otherwise)."""
    registry.remove_node(ctx, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{name}/check", response_model=NodeCheckOut, responses=ERRORS)
def check(name: str, ctx: ContextDep, _: ReadDep) -> NodeCheckOut:
    """Ping the node and read /info: version, node id, transfer user, activity logging."""
    return NodeCheckOut.model_validate(check_node(ctx, name), from_attributes=True)
