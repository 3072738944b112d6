"""The spec for an SSH endpoint: built from its registry entry, no upload_setup to call.

The source node's ascp logs in as the endpoint's transfer user with the password or private
key posted in the spec (node-api.md §3.2, "SSH credentials"); the endpoint's docroot and
aspera.conf authorise what it writes, as for scp.
"""

from __future__ import annotations

from orchestrator.db.tables import NodeRow
from orchestrator.domain.transfers import TransferSpec
from orchestrator.errors import ConfigError, NodeConfigurationError
from orchestrator.logsetup import register_secret
from orchestrator.services.context import ServiceContext


def ssh_grants(
    ctx: ServiceContext, destination: NodeRow, destination_roots: list[str]
) -> list[TransferSpec]:
    """One spec per destination root, carrying the endpoint's host, port, user, credential and
    pinned host key; NodeConfigurationError if its stored credential cannot be opened."""
    try:
        secret = ctx.clients.box.decrypt(destination.secret_encrypted)
    except ConfigError as exc:
        raise NodeConfigurationError(str(exc), node=destination.name, field="secret") from None
    register_secret(secret)  # masked in every log line of this process from now on
    credential = "ssh_private_key" if destination.auth_kind == "ssh_key" else "remote_password"
    return [
        TransferSpec.model_validate(
            {
                "direction": "send",
                "remote_host": destination.transfer_host,
                "remote_user": destination.username,
                "ssh_port": destination.ssh_port,
                "sshfp": destination.sshfp,  # None: not pinned (dropped from the body)
                "destination_root": root,
                credential: secret,
            }
        )
        for root in destination_roots
    ]
