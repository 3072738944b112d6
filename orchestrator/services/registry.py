"""The node registry: register nodes (secrets encrypted) and hand out one NodeClient per node."""

from __future__ import annotations

import threading

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.crypto import SecretBox
from orchestrator.db.tables import NodeRow
from orchestrator.domain.nodes import NodeConnection, NodeRegistration, Timeouts
from orchestrator.domain.paths import normalise_root
from orchestrator.errors import ConfigError
from orchestrator.nodeapi.client import NodeClient
from orchestrator.settings import Settings


class NodeNotRegistered(ConfigError):
    """No enabled node has that name or id."""


def register_node(session: Session, node: NodeRegistration, box: SecretBox) -> NodeRow:
    """Add a node to the registry (the caller commits)."""
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
        enabled=True,
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise ConfigError(f"a node named {node.name!r} is already registered") from None
    return row


def node_by_name(session: Session, name: str) -> NodeRow:
    """The enabled node with this name."""
    row = session.scalar(select(NodeRow).where(NodeRow.name == name))
    if row is None or not row.enabled:
        raise NodeNotRegistered(f"no enabled node named {name!r}; register it first")
    return row


def connection_for(row: NodeRow, box: SecretBox, settings: Settings) -> NodeConnection:
    """The NodeConnection of a registry row (decrypts its secret)."""
    secret = box.decrypt(row.secret_encrypted)
    if row.auth_kind == "bearer":
        auth: dict[str, object] = {
            "kind": "bearer",
            "token": secret,
            "access_key_id": row.username,
        }
    else:
        auth = {"kind": row.auth_kind, "username": row.username, "password": secret}
    return NodeConnection.model_validate(
        {
            "name": row.name,
            "base_url": row.base_url,
            "auth": auth,
            "ca_bundle": row.ca_bundle,
            "insecure": row.insecure,
            "timeouts": Timeouts(
                connect=settings.node_connect_timeout,
                read=settings.node_read_timeout,
                write=settings.node_read_timeout,
            ),
        }
    )


class NodeClients:
    """One pooled NodeClient per node per process, rebuilt when the registry row changes."""

    def __init__(self, sessions: sessionmaker[Session], box: SecretBox, settings: Settings) -> None:
        self._sessions = sessions
        self._box = box
        self._settings = settings
        self._lock = threading.Lock()
        self._clients: dict[int, tuple[object, NodeClient]] = {}

    def get(self, node_id: int) -> NodeClient:
        """The client for a node id."""
        with self._sessions() as session:
            row = session.get(NodeRow, node_id)
            if row is None:
                raise NodeNotRegistered(f"node id {node_id} is not registered")
            version = (row.updated_at, row.base_url, row.secret_encrypted)
            with self._lock:
                cached = self._clients.get(node_id)
                if cached is not None and cached[0] == version:
                    return cached[1]
                client = NodeClient.connect(connection_for(row, self._box, self._settings))
                if cached is not None:
                    cached[1].close()
                self._clients[node_id] = (version, client)
                return client

    def close(self) -> None:
        """Close every client (e.g. after a fork, or at shutdown)."""
        with self._lock:
            for _, client in self._clients.values():
                client.close()
            self._clients.clear()
