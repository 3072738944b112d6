"""How to reach and authenticate to one HSTS node (value objects, no I/O)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr, field_validator


class BasicAuth(BaseModel):
    """HTTP Basic with a node user or an access key id and its secret (node-api.md §1.2)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["node_user", "access_key"] = "node_user"
    username: str = Field(min_length=1)
    password: SecretStr


class BearerAuth(BaseModel):
    """A bearer token, always sent with the access key id it belongs to (node-api.md §1.2)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["bearer"] = "bearer"
    token: SecretStr
    access_key_id: str = Field(min_length=1)


NodeAuth = Annotated[BasicAuth | BearerAuth, Field(discriminator="kind")]


class Timeouts(BaseModel):
    """Per-call HTTP timeouts in seconds; every Node API call has them."""

    model_config = ConfigDict(frozen=True)

    connect: float = Field(default=5.0, gt=0)
    read: float = Field(default=30.0, gt=0)
    write: float = Field(default=30.0, gt=0)
    pool: float = Field(default=5.0, gt=0)


class NodeConnection(BaseModel):
    """Everything needed to talk to one node's API: URL, credentials, TLS trust, timeouts."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    base_url: HttpUrl
    auth: NodeAuth
    ca_bundle: Path | None = None
    insecure: bool = False
    timeouts: Timeouts = Timeouts()

    @field_validator("base_url")
    @classmethod
    def _no_path_query_or_credentials(cls, url: HttpUrl) -> HttpUrl:
        if url.username or url.password:
            raise ValueError("put credentials in auth, not in the URL")
        if url.query or url.fragment:
            raise ValueError("the node URL takes no query or fragment")
        return url

    @property
    def url(self) -> str:
        """The base URL without a trailing slash."""
        return str(self.base_url).rstrip("/")
