"""The node registry: register nodes (secrets encrypted) and hand out one NodeClient per node."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.crypto import SecretBox
from orchestrator.db.tables import JobRow, NodeCursorRow, NodeRow, ScheduleRow
from orchestrator.domain.nodes import NodeConnection, NodeRegistration, Timeouts
from orchestrator.domain.paths import normalise_root
from orchestrator.errors import ConfigError, NodeError
from orchestrator.logsetup import register_secret
from orchestrator.nodeapi.client import NodeClient
from orchestrator.nodeapi.observe import CallObserver
from orchestrator.settings import Settings


class NodeNotRegistered(ConfigError):
    """No enabled node has that name or id."""


def register_node(session: Session, node: NodeRegistration, box: SecretBox) -> NodeRow:
    """Add a node to the registry (the caller commits)."""
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
        enabled=True,
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise ConfigError(f"a node named {node.name!r} is already registered") from None
    return row


def connection_for(row: NodeRow, box: SecretBox, settings: Settings) -> NodeConnection:
    """The NodeConnection of a registry row (decrypts its secret)."""
    secret = box.decrypt(row.secret_encrypted)
    register_secret(secret)  # from now on masked in every log line of this process
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
    """One pooled NodeClient per node per process, rebuilt when the registry row changes.

    ``observer`` hears about every node request (the metrics recorder of worker processes).
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        box: SecretBox,
        settings: Settings,
        *,
        observer: CallObserver | None = None,
    ) -> None:
        self._sessions = sessions
        self.box = box
        self._settings = settings
        self._observer = observer
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
                conn = connection_for(row, self.box, self._settings)
                client = NodeClient.connect(conn, observer=self._observer)
                if cached is not None:
                    cached[1].close()
                self._clients[node_id] = (version, client)
                return client

    def close(self) -> None:
        """Close every client (e.g. after a fork, or at shutdown); the observer flushes."""
        with self._lock:
            for _, client in self._clients.values():
                client.close()
            self._clients.clear()
        flush = getattr(self._observer, "flush", None)
        if callable(flush):
            flush()


def list_nodes(session: Session) -> list[NodeRow]:
    """Every registered node, by name."""
    return list(session.scalars(select(NodeRow).order_by(NodeRow.name)))


def update_node(session: Session, name: str, changes: dict[str, object], box: SecretBox) -> NodeRow:
    """Change a node's settings (the caller commits); a new secret is encrypted first."""
    row = node_named(session, name)
    for key, value in changes.items():
        if key == "secret":
            secret = value if isinstance(value, SecretStr) else SecretStr(str(value))
            register_secret(secret)
            row.secret_encrypted = box.encrypt(secret)
        elif key == "root_path":
            row.root_path = normalise_root(str(value))
        elif key == "base_url":
            row.base_url = str(value).rstrip("/")
        else:
            setattr(row, key, value)
    session.flush()
    return row


def remove_node(session: Session, name: str) -> None:
    """Delete a node that no job refers to (the caller commits); disable it otherwise."""
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
        .where((ScheduleRow.source_node_id == row.id) | (ScheduleRow.destination_node_id == row.id))
        .limit(1)
    )
    if schedule is not None:
        raise NodeInUse(f"schedule {schedule!r} uses node {name!r}; delete or change it first")
    session.delete(row)
    session.flush()


class NodeInUse(ConfigError):
    """A node that jobs or schedules refer to cannot be deleted."""


def node_named(session: Session, name: str) -> NodeRow:
    """The node with this name, enabled or not (a disabled node's jobs wait in the queue)."""
    row = session.scalar(select(NodeRow).where(NodeRow.name == name))
    if row is None:
        raise NodeNotRegistered(f"no node named {name!r} is registered (see: nodes list)")
    return row


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
    enabled: bool
    last_poll_at: datetime | None
    last_error: str | None


def node_view(session: Session, row: NodeRow) -> NodeView:
    """The reader's view of a node."""
    cursor = session.get(NodeCursorRow, row.id)
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
        enabled=row.enabled,
        last_poll_at=cursor.last_poll_at if cursor else None,
        last_error=cursor.last_error if cursor else None,
    )


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


def check_node(clients: NodeClients, sessions: sessionmaker[Session], name: str) -> NodeCheck:
    """Ping the node and read /info; errors are reported, not raised."""
    with sessions() as session:
        node_id = node_named(session, name).id
    try:
        client = clients.get(node_id)
        client.ping()
        info = client.info()
    except NodeError as exc:
        return NodeCheck(name=name, reachable=False, error=str(exc))
    return NodeCheck(
        name=name,
        reachable=True,
        version=info.version,
        node_id=info.node_id,
        transfer_user=info.transfer_user,
        activity_logging=info.activity_logging,
        capabilities=dict(info.capabilities),
    )


def rotate_node_secrets(session: Session, box: SecretBox) -> int:
    """Re-encrypt every node secret with the newest key (the caller commits); returns a count.

    After it, the old key can leave ORCH_SECRET_KEYS.
    """
    rows = list(session.scalars(select(NodeRow)))
    for row in rows:
        row.secret_encrypted = box.rotate(row.secret_encrypted)
    session.flush()
    return len(rows)
