"""/api/v1/nodes: the node registry (admin) and what the API knows about each node."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from orchestrator.api.deps import AdminDep, ContextDep, ReadDep, SessionDep
from orchestrator.api.schemas import NodeCheckOut, NodeCreate, NodeOut, NodeUpdate, error_responses
from orchestrator.crypto import SecretBox
from orchestrator.domain.nodes import NodeRegistration
from orchestrator.services import registry
from orchestrator.services.context import ServiceContext

router = APIRouter(prefix="/api/v1/nodes", tags=["nodes"])

ERRORS = error_responses({404: "no such node", 409: "name taken, or jobs refer to the node"})


def _box(ctx: ServiceContext) -> SecretBox:
    return ctx.clients.box


def _out(view: registry.NodeView) -> NodeOut:
    return NodeOut.model_validate(view, from_attributes=True)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=NodeOut, responses=ERRORS)
def register(body: NodeCreate, session: SessionDep, ctx: ContextDep, _: AdminDep) -> NodeOut:
    """Register a node; its secret is encrypted at rest and never shown again."""
    row = registry.register_node(
        session, NodeRegistration.model_validate(body.model_dump()), _box(ctx)
    )
    session.commit()
    return _out(registry.node_view(session, row))


@router.get("", response_model=list[NodeOut], responses=ERRORS)
def list_all(session: SessionDep, _: ReadDep) -> list[NodeOut]:
    """Every node, with its last poll and last error."""
    return [_out(registry.node_view(session, row)) for row in registry.list_nodes(session)]


@router.get("/{name}", response_model=NodeOut, responses=ERRORS)
def show(name: str, session: SessionDep, _: ReadDep) -> NodeOut:
    """One node."""
    return _out(registry.node_view(session, registry.node_named(session, name)))


@router.patch("/{name}", response_model=NodeOut, responses=ERRORS)
def update(
    name: str, body: NodeUpdate, session: SessionDep, ctx: ContextDep, _: AdminDep
) -> NodeOut:
    """Change a node's settings (a new secret replaces the old one)."""
    nullable = {"ca_bundle", "transfer_host"}
    changes = {
        key: value
        for key, value in body.model_dump(exclude_unset=True).items()
        if value is not None or key in nullable
    }
    row = registry.update_node(session, name, changes, _box(ctx))
    session.commit()
    return _out(registry.node_view(session, row))


@router.post("/{name}/disable", response_model=NodeOut, responses=ERRORS)
def disable(name: str, session: SessionDep, ctx: ContextDep, _: AdminDep) -> NodeOut:
    """Stop admitting jobs to or from the node (running transfers go on)."""
    row = registry.update_node(session, name, {"enabled": False}, _box(ctx))
    session.commit()
    return _out(registry.node_view(session, row))


@router.post("/{name}/enable", response_model=NodeOut, responses=ERRORS)
def enable(name: str, session: SessionDep, ctx: ContextDep, _: AdminDep) -> NodeOut:
    """Admit jobs to and from the node again (after maintenance)."""
    row = registry.update_node(session, name, {"enabled": True}, _box(ctx))
    session.commit()
    return _out(registry.node_view(session, row))


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
def delete(name: str, session: SessionDep, _: AdminDep) -> Response:
    """Remove a node no job refers to (disable it otherwise)."""
    registry.remove_node(session, name)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{name}/check", response_model=NodeCheckOut, responses=ERRORS)
def check(name: str, ctx: ContextDep, _: ReadDep) -> NodeCheckOut:
    """Ping the node and read /info: version, node id, transfer user, activity logging."""
    return NodeCheckOut.model_validate(
        registry.check_node(ctx.clients, ctx.sessions, name), from_attributes=True
    )
