"""Configuration of one simulated node (the simulator's stand-in for aspera.conf)."""

from __future__ import annotations

import secrets
import string
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_ALNUM = string.ascii_letters + string.digits


def random_id(length: int) -> str:
    """Return a random alphanumeric string, shaped like an Aspera access key id."""
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


def _default_access_keys() -> dict[str, str]:
    """Return one freshly generated access key id -> secret pair."""
    return {random_id(32): secrets.token_urlsafe(24)}


@dataclass
class NodeConfig:
    """Settings of one node; credentials and keys default to random values per node."""

    name: str
    docroot: Path
    host: str = "127.0.0.1"
    advertise_host: str | None = None  # remote_host in *_setup answers (default: host)
    api_port: int = 0
    fasp_port: int = 0
    transfer_user: str = "xfer"
    node_user: str = "node_admin"
    node_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    access_keys: dict[str, str] = field(default_factory=_default_access_keys)
    bearer_tokens: dict[str, str] = field(default_factory=dict)
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    activity_logging: bool = True
    retention_seconds: float = 129600.0
    token_life_seconds: int = 86400
    max_concurrent_sessions: int = 20  # sessions beyond it wait in the node's queue
    max_retries: int = 3
    retry_delay_seconds: float = 1.0
    default_target_rate_kbps: int = 0
    progress_log_interval: float = 0.5
    node_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    cluster_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    token_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    tls_cert: Path | None = None
    tls_key: Path | None = None
    faults: list[dict[str, Any]] = field(default_factory=list)
    # SSH logins of the transfer user on the data plane (an SSH-only destination): its password
    # and the OpenSSH public keys ("ssh-ed25519 AAAA...") it accepts; none by default.
    ssh_password: str | None = None
    ssh_authorized_keys: list[str] = field(default_factory=list)
    # The host key fingerprint a client may pin with sshfp (aspera.conf ssh_fingerprint).
    ssh_fingerprint: str = field(default_factory=lambda: secrets.token_hex(20))
    # Capacities in kbps, 0 or absent: unlimited. links maps a peer's name to the capacity of
    # the link from this node to it; transfers crossing a capacity share it (shares.py).
    inbound_kbps: int = 0
    outbound_kbps: int = 0
    links: dict[str, int] = field(default_factory=dict)

    @property
    def scheme(self) -> str:
        """Return "https" when a certificate is configured, else "http"."""
        return "https" if self.tls_cert is not None else "http"

    @property
    def first_access_key(self) -> tuple[str, str]:
        """Return the first access key id and its secret."""
        key_id = next(iter(self.access_keys))
        return key_id, self.access_keys[key_id]


# Settings that PUT /admin/settings may change while the node runs, with their types.
RUNTIME_SETTINGS: dict[str, type] = {
    "activity_logging": bool,
    "retention_seconds": float,
    "max_retries": int,
    "retry_delay_seconds": float,
    "default_target_rate_kbps": int,
    "progress_log_interval": float,
    "max_concurrent_sessions": int,
    "token_life_seconds": int,
}
