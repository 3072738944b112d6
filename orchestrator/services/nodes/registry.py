"""The node registry: register, change, disable and remove nodes (secrets encrypted at rest)."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orchestrator.crypto import SecretBox
from orchestrator.db.tables import JobRow, NodeRow, ScheduleRow
from orchestrator.domain.nodes import NodeChanges, NodeRegistration
from orchestrator.domain.paths import normalise_root
from orchestrator.domain.sshendpoints import SSH, SshEndpointRegistration, fingerprint, private_key
from orchestrator.errors import ConfigError
from orchestrator.logsetup import register_secret
from orchestrator.services.context import ServiceContext
from orchestrator.services.nodes.clients import NodeNotRegistered


class NodeInUse(ConfigError):
    """A node that jobs or schedules refer to cannot be deleted."""


class NodeChangeRefused(ValueError):
    """A change that does not fit the node's kind (``field`` names it): bad input, 422."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


# What an SSH endpoint's registry entry can change; its host is transfer_host.
SSH_CHANGES = frozenset(
    {"username", "secret", "transfer_host", "ssh_port", "sshfp", "root_path", "max_inbound"}
    | {"enabled"}
)


def register_node(ctx: ServiceContext, node: NodeRegistration) -> int:
    """Add a node to the registry; returns its id."""
    with ctx.sessions() as session:
        row = _add(session, node, ctx.clients.box)
        session.commit()
        return row.id


def register_ssh_endpoint(ctx: ServiceContext, node: SshEndpointRegistration) -> int:
    """Add an SSH endpoint (a destination with no Node API); returns its id."""
    register_secret(node.secret)
    row = NodeRow(
        name=node.name,
        kind=SSH,
        base_url=node.url,
        auth_kind=node.auth_kind,
        username=node.ssh_user,
        secret_encrypted=ctx.clients.box.encrypt(node.secret),
        insecure=False,
        transfer_host=node.ssh_host,
        ssh_port=node.ssh_port,
        sshfp=node.sshfp,
        root_path=normalise_root(node.root_path),
        max_outbound=1,  # never a source: jobs from it are refused
        max_inbound=node.max_inbound,
        enabled=True,
    )
    with ctx.sessions() as session:
        _insert(session, row)
        session.commit()
        return row.id


def _add(session: Session, node: NodeRegistration, box: SecretBox) -> NodeRow:
    register_secret(node.secret)
    row = NodeRow(
        name=node.name,
        base_url=str(node.base_url).rstrip("/"),
        auth_kind=node.auth_kind,
        username=node.username,
        secret_encrypted=box.encrypt(node.secret),
        ca_bundle=node.ca_bundle,
        insecure=node.insecure,
        transfer_host=node.transfer_host,
        root_path=normalise_root(node.root_path),
        max_outbound=node.max_outbound,
        max_inbound=node.max_inbound,
        activity_retention_seconds=node.activity_retention_seconds,
        enabled=True,
    )
    return _insert(session, row)


def _insert(session: Session, row: NodeRow) -> NodeRow:
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise ConfigError(f"a node named {row.name!r} is already registered") from None
    return row


def update_node(ctx: ServiceContext, name: str, changes: dict[str, object]) -> None:
    """Change a node's settings, each checked as on registration (NodeChanges: a ValueError
    names the field); a new secret is encrypted first."""
    checked = NodeChanges.model_validate(changes).model_dump(exclude_unset=True)
    with ctx.sessions() as session:
        _change(session, node_named(session, name), checked, ctx.clients.box)
        session.commit()


def _change(session: Session, row: NodeRow, changes: dict[str, object], box: SecretBox) -> None:
    _fits_kind(row, changes)
    for key, value in changes.items():
        if key == "secret":
            secret = value if isinstance(value, SecretStr) else SecretStr(str(value))
            if row.auth_kind == "ssh_key":
                try:
                    secret = private_key(secret)
                except ValueError as exc:
                    raise NodeChangeRefused("secret", str(exc)) from None
            register_secret(secret)
            row.secret_encrypted = box.encrypt(secret)
        elif key == "sshfp":
            try:
                row.sshfp = fingerprint(None if value is None else str(value))
            except ValueError as exc:
                raise NodeChangeRefused("sshfp", str(exc)) from None
        elif key == "root_path":
            row.root_path = normalise_root(str(value))
        elif key == "base_url":
            row.base_url = str(value).rstrip("/")
        else:
            setattr(row, key, value)
    if row.kind == SSH:
        host = row.transfer_host or ""
        row.base_url = f"ssh://{f'[{host}]' if ':' in host else host}:{row.ssh_port}"
    session.flush()


def _fits_kind(row: NodeRow, changes: dict[str, object]) -> None:
    """Refuse a change an entry of this kind does not have."""
    if row.kind == SSH:
        for key in changes:
            if key not in SSH_CHANGES:
                raise NodeChangeRefused(key, f"node {row.name!r} is an SSH endpoint: no {key}")
        if "transfer_host" in changes and not changes["transfer_host"]:
            raise NodeChangeRefused("transfer_host", "an SSH endpoint needs its host")
        return
    for key in ("ssh_port", "sshfp"):
        if changes.get(key) is not None:
            raise NodeChangeRefused(key, f"node {row.name!r} has a Node API: no {key}")


def ensure_node(ctx: ServiceContext, node: NodeRegistration) -> bool:
    """Register the node, or update its URL, credentials and transfer host if the name is taken
    (a demo node gets new ports and a new password on every start). True when created."""
    with ctx.sessions() as session:
        row = session.scalar(select(NodeRow).where(NodeRow.name == node.name))
        if row is None:
            _add(session, node, ctx.clients.box)
            session.commit()
            return True
        changes: dict[str, Any] = {
            "base_url": str(node.base_url),
            "auth_kind": node.auth_kind,
            "username": node.username,
            "secret": node.secret,
            "transfer_host": node.transfer_host,
            "ca_bundle": node.ca_bundle,
            "insecure": node.insecure,
            "root_path": node.root_path,
            "enabled": True,
        }
        _change(session, row, changes, ctx.clients.box)
        session.commit()
        return False


def remove_node(ctx: ServiceContext, name: str) -> None:
    """Delete a node that no job or schedule refers to (disable it otherwise)."""
    with ctx.sessions() as session:
        row = node_named(session, name)
        used = session.scalar(
            select(JobRow.id)
            .where((JobRow.source_node_id == row.id) | (JobRow.destination_node_id == row.id))
            .limit(1)
        )
        if used is not None:
            raise NodeInUse(f"jobs refer to node {name!r}; disable it instead")
        schedule = session.scalar(
            select(ScheduleRow.id)
            .where(
                (ScheduleRow.source_node_id == row.id) | (ScheduleRow.destination_node_id == row.id)
            )
            .limit(1)
        )
        if schedule is not None:
            raise NodeInUse(f"schedule {schedule!r} uses node {name!r}; delete or change it first")
        session.delete(row)
        session.commit()


def rotate_node_secrets(ctx: ServiceContext, box: SecretBox | None = None) -> int:
    """Re-encrypt every node secret with the newest key (``box``: the context's by default).

    After it, the old key can leave ORCH_SECRET_KEYS. Returns how many secrets were rotated.
    """
    keys = box or ctx.clients.box
    with ctx.sessions() as session:
        rows = list(session.scalars(select(NodeRow)))
        for row in rows:
            row.secret_encrypted = keys.rotate(row.secret_encrypted)
        session.commit()
        return len(rows)


def node_named(session: Session, name: str) -> NodeRow:
    """The node with this name, enabled or not (a disabled node's jobs wait in the queue)."""
    row = session.scalar(select(NodeRow).where(NodeRow.name == name))
    if row is None:
        raise not_registered(name)
    return row


def not_registered(name: str) -> NodeNotRegistered:
    """The error for a node name the registry does not hold."""
    return NodeNotRegistered(f"no node named {name!r} is registered (see: nodes list)")


def node_names(session: Session) -> dict[int, str]:
    """Every node's name by id."""
    return {row[0]: row[1] for row in session.execute(select(NodeRow.id, NodeRow.name))}
