"""SSH logins on the data plane: the transfer user's password or private key, and sshfp.

A real HSTS authenticates an SSH-credentialled session in its SSH server before ascp starts:
the client checks the host key against sshfp (ascp error 51 when it differs), then logs in as
the transfer user (error 19, "authentication failure", when refused).
"""

from __future__ import annotations

import hmac
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from hstssim import errors_table as codes
from hstssim.config import NodeConfig
from hstssim.errors_table import SessionFailure

CREDENTIALS = ("remote_password", "ssh_private_key")  # spec fields that carry an SSH login


def carries_login(hello: dict[str, Any]) -> bool:
    """Whether a handshake logs in with SSH credentials rather than a token."""
    return any(hello.get(name) for name in CREDENTIALS)


def _plain(fingerprint: str) -> str:
    """A fingerprint without colons, hex in lower case (SHA256:base64 is kept as is)."""
    if fingerprint.startswith("SHA256:"):
        return fingerprint
    return fingerprint.replace(":", "").lower()


def check_login(config: NodeConfig, hello: dict[str, Any]) -> None:
    """Refuse the session unless its sshfp (when given) and its credential are this node's."""
    pinned = hello.get("sshfp")
    if pinned and _plain(str(pinned)) != _plain(config.ssh_fingerprint):
        raise SessionFailure(codes.INSECURE_CONNECTION)
    password = hello.get("remote_password")
    if password:
        expected = config.ssh_password
        if expected is None or not hmac.compare_digest(str(password).encode(), expected.encode()):
            raise SessionFailure(codes.AUTH)
        return
    if not _key_accepted(config, str(hello.get("ssh_private_key", ""))):
        raise SessionFailure(codes.AUTH)


def _key_accepted(config: NodeConfig, pem: str) -> bool:
    """Whether the private key's public half is one of the node's authorised keys."""
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
        public = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return False
    offered = public.decode().split()[:2]
    return any(line.split()[:2] == offered for line in config.ssh_authorized_keys)
