"""One pooled NodeClient per registered node per process, rebuilt when its registry row changes."""

from __future__ import annotations

import threading
import time

from sqlalchemy.orm import Session, sessionmaker

from orchestrator.crypto import SecretBox
from orchestrator.db.tables import NodeRow
from orchestrator.domain.nodes import NodeConnection, Timeouts
from orchestrator.domain.sshendpoints import SSH
from orchestrator.errors import ConfigError, NodeConfigurationError
from orchestrator.logsetup import register_secret
from orchestrator.nodeapi.client import NodeClient
from orchestrator.nodeapi.observe import CallObserver
from orchestrator.settings import Settings

REGISTRY_TTL = 5.0  # seconds a node's client is used before its registry row is read again


class NodeNotRegistered(ConfigError):
    """No node has that name or id."""


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
        self._checked: dict[int, float] = {}  # when each node's row was last compared

    def get(self, node_id: int) -> NodeClient:
        """The client for a node id; its registry row is read again at most every few seconds
        (REGISTRY_TTL), so a changed URL or secret takes effect within that time."""
        with self._lock:
            cached = self._clients.get(node_id)
            if cached is not None and time.monotonic() - self._checked[node_id] < REGISTRY_TTL:
                return cached[1]
        with self._sessions() as session:
            row = session.get(NodeRow, node_id)
            if row is None:
                raise NodeNotRegistered(f"node id {node_id} is not registered")
            if row.kind == SSH:
                raise NodeConfigurationError(
                    f"node {row.name!r} is an SSH endpoint: it has no Node API to call",
                    node=row.name,
                    field="kind",
                )
            version = (row.updated_at, row.base_url, row.secret_encrypted)
            with self._lock:
                cached = self._clients.get(node_id)
                self._checked[node_id] = time.monotonic()
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
            self._checked.clear()
        flush = getattr(self._observer, "flush", None)
        if callable(flush):
            flush()
