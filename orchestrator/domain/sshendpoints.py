"""SSH endpoints: destinations reached only by their transfer user's SSH credentials."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
)

from orchestrator.domain.nodes import NodeUsername, RootPath

NODE_API = "node_api"  # a node with a Node API (nodes.kind)
SSH = "ssh"  # an SSH endpoint: no Node API, only a destination (nodes.kind)
SSH_AUTH_KINDS = ("ssh_password", "ssh_key")  # nodes.auth_kind of an SSH endpoint
DEFAULT_SSH_PORT = 33001  # Aspera's SSH port (node-api.md §2.2, ssh_port)
MAX_KEY_LENGTH = 16384

_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.\-]*[A-Za-z0-9])?$|^\[?[0-9A-Fa-f:.]+\]?$")
# aspera.conf's ssh_fingerprint is shown as hex (40 digits in node-api.md F1); ascp also takes
# "SHA256:<base64>". The reference names no other format, so both are accepted, nothing else.
_SSHFP = re.compile(r"^([0-9A-Fa-f]{2}:?){16,64}$|^SHA256:[A-Za-z0-9+/]{43}=?$")
_PEM = re.compile(
    r"^-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----\n.+\n-----END \1PRIVATE KEY-----\n?$", re.DOTALL
)


def ssh_host(value: str) -> str:
    """A host name or IP address, nothing else (no user@, no port, no URL)."""
    if not _HOST.match(value):
        raise ValueError("give a host name or IP address only (port and user are separate)")
    return value


def fingerprint(value: str | None) -> str | None:
    """A host key fingerprint: hex digits (colons allowed) or SHA256:<base64>."""
    if value is None:
        return None
    value = value.strip()
    if not _SSHFP.match(value):
        raise ValueError("give the host key fingerprint as hex digits or as SHA256:<base64>")
    return value


SshHost = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(ssh_host)]
SshPort = Annotated[int, Field(ge=1, le=65535)]
Fingerprint = Annotated[str | None, Field(max_length=128), AfterValidator(fingerprint)]


def private_key(secret: SecretStr) -> SecretStr:
    """A PEM private key (the whole file); a passphrase-protected key is not supported."""
    text = secret.get_secret_value().replace("\r\n", "\n").strip() + "\n"
    if not _PEM.match(text):
        # The message never quotes the value: it is a secret.
        raise ValueError("ssh_private_key must be a PEM private key (-----BEGIN ... KEY-----)")
    if "ENCRYPTED" in text:
        raise ValueError("ssh_private_key is passphrase-protected; give an unencrypted key")
    return SecretStr(text)


class SshEndpointRegistration(BaseModel):
    """An SSH endpoint as an operator registers it: exactly one of password and private key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    ssh_host: SshHost = Field(description="host name or address the source node connects to")
    ssh_port: SshPort = DEFAULT_SSH_PORT
    ssh_user: NodeUsername = Field(description="the transfer user on the endpoint")
    ssh_password: SecretStr | None = Field(default=None, max_length=1024)
    ssh_private_key: SecretStr | None = Field(
        default=None, max_length=MAX_KEY_LENGTH, validate_default=True
    )
    sshfp: Fingerprint = Field(default=None, description="host key fingerprint to pin")
    root_path: RootPath = "/"
    max_inbound: int = Field(default=10, ge=1, le=1000)

    @field_validator("ssh_password")
    @classmethod
    def _not_empty(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value():
            raise ValueError("the password is empty")
        return value

    @field_validator("ssh_private_key")
    @classmethod
    def _pem_and_one_credential(
        cls, value: SecretStr | None, info: ValidationInfo
    ) -> SecretStr | None:
        if (info.data.get("ssh_password") is None) == (value is None):
            if "ssh_password" not in info.data and value is not None:
                return private_key(value)  # the password itself was refused
            raise ValueError("give exactly one of ssh_password and ssh_private_key")
        return None if value is None else private_key(value)

    @property
    def auth_kind(self) -> Literal["ssh_password", "ssh_key"]:
        """What the stored secret is."""
        return "ssh_password" if self.ssh_password is not None else "ssh_key"

    @property
    def secret(self) -> SecretStr:
        """The password or the private key, whichever was given."""
        secret = self.ssh_password or self.ssh_private_key
        assert secret is not None
        return secret

    @property
    def url(self) -> str:
        """How the endpoint is shown (nodes.base_url): never called."""
        host = f"[{self.ssh_host}]" if ":" in self.ssh_host else self.ssh_host
        return f"ssh://{host}:{self.ssh_port}"
