"""How to reach and authenticate to one HSTS node (value objects, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    HttpUrl,
    SecretStr,
    Tag,
    field_validator,
)

from orchestrator.domain.paths import MAX_PATH_LENGTH, UnsafePath, clean_relative
from orchestrator.domain.text import check_readable


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


def _auth_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "bearer" if value.get("kind") == "bearer" else "basic"
    return "bearer" if isinstance(value, BearerAuth) else "basic"


NodeAuth = Annotated[
    Annotated[BasicAuth, Tag("basic")] | Annotated[BearerAuth, Tag("bearer")],
    Discriminator(_auth_kind),
]


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


def plain_base_url(url: HttpUrl) -> HttpUrl:
    """A node URL is scheme, host and port: no credentials, query or fragment."""
    if url.username or url.password or url.query or url.fragment:
        raise ValueError("give scheme, host and port only; credentials go in secret")
    return url


def checked_root(root: str) -> str:
    """A node's root path: a path within the docroot that cannot climb out of it."""
    try:
        clean_relative(root)
    except UnsafePath as exc:
        raise ValueError(str(exc)) from None
    return root


def readable_or_none(value: str | None) -> str | None:
    """Free text a registry entry holds (CA bundle path, transfer host): readable characters."""
    return None if value is None else check_readable(value)


MAX_SECRET_LENGTH = 4096
MAX_CA_BUNDLE_LENGTH = 4096


# The fields a registry entry holds, checked the same way on create and on every change.
RootPath = Annotated[str, Field(max_length=MAX_PATH_LENGTH), AfterValidator(checked_root)]
CaBundle = Annotated[
    str | None, Field(max_length=MAX_CA_BUNDLE_LENGTH), AfterValidator(readable_or_none)
]
TransferHost = Annotated[str | None, Field(max_length=255), AfterValidator(readable_or_none)]
NodeSecret = Annotated[SecretStr, Field(min_length=1, max_length=MAX_SECRET_LENGTH)]
NodeUsername = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")]


class NodeRegistration(BaseModel):
    """A node as an operator registers it; the secret is encrypted before it is stored."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    base_url: HttpUrl
    auth_kind: Literal["node_user", "access_key", "bearer"] = "node_user"
    username: NodeUsername = Field(description="node user or access key id")
    secret: NodeSecret = Field(description="password, access key secret, or bearer token")
    ca_bundle: CaBundle = Field(default=None, description="path of a PEM CA bundle")
    insecure: bool = False
    transfer_host: TransferHost = None
    root_path: RootPath = "/"
    max_outbound: int = Field(default=10, ge=1, le=1000)
    max_inbound: int = Field(default=10, ge=1, le=1000)
    activity_retention_seconds: int = Field(
        default=129600,
        ge=60,
        le=366 * 86400,
        description="how long the node keeps transfer records (its activity_retention)",
    )

    @field_validator("base_url")
    @classmethod
    def _plain_base_url(cls, url: HttpUrl) -> HttpUrl:
        return plain_base_url(url)


class NodeChanges(BaseModel):
    """Fields of a registered node to change, each checked as on registration (a URL with a
    password is refused here too, never stored)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: HttpUrl | None = None
    username: NodeUsername | None = None
    secret: NodeSecret | None = None
    ca_bundle: CaBundle = None
    insecure: bool | None = None
    transfer_host: TransferHost = None
    root_path: RootPath | None = None
    max_outbound: int | None = Field(default=None, ge=1, le=1000)
    max_inbound: int | None = Field(default=None, ge=1, le=1000)
    activity_retention_seconds: int | None = Field(default=None, ge=60, le=366 * 86400)
    enabled: bool | None = None
    ssh_port: int | None = Field(default=None, ge=1, le=65535, description="SSH endpoints only")
    sshfp: str | None = Field(
        default=None, max_length=128, description="SSH endpoints only: host key fingerprint"
    )

    @field_validator("base_url")
    @classmethod
    def _plain_base_url(cls, url: HttpUrl | None) -> HttpUrl | None:
        return None if url is None else plain_base_url(url)


RETENTION_RISK = 0.5  # a poll lag past this share of the node's retention is a risk


def at_risk(lag_seconds: float, retention_seconds: int) -> bool:
    """Whether a node's poll lag has come near the time it keeps transfer records."""
    return lag_seconds >= RETENTION_RISK * retention_seconds


@dataclass(frozen=True)
class NodePoll:
    """How fresh the orchestrator's view of one source node is."""

    node_id: int
    name: str
    activity_retention_seconds: int  # how long the node keeps transfer records
    open_transfers: int  # our transfers on it that its change feed must still report on
    last_success_at: datetime | None
    failing: bool  # the last poll ended in an error
    lag_seconds: float  # 0 with nothing to follow; else since the feed was last read for them


@dataclass(frozen=True)
class Reachability:
    """Whether a node answers, by the newest of its last poll and its last health check."""

    reachable: bool | None  # None: never polled nor checked
    as_of: datetime | None  # when that was learnt
    error: str | None  # what the node (or the way to it) said, when it did not answer


UNKNOWN_REACHABILITY = Reachability(None, None, None)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def reachability(
    *,
    poll_ok_at: datetime | None,
    poll_failed_at: datetime | None,
    poll_error: str | None,
    checked_at: datetime | None,
    check_ok: bool | None,
    check_error: str | None,
) -> Reachability:
    """The newest fact about a node: a poll (sources) or a health check (every node)."""
    facts: list[Reachability] = []
    if poll_failed_at is not None and poll_error:
        facts.append(Reachability(False, poll_failed_at, poll_error))
    elif poll_ok_at is not None:
        facts.append(Reachability(True, poll_ok_at, None))
    if checked_at is not None and check_ok is not None:
        facts.append(Reachability(check_ok, checked_at, None if check_ok else check_error))
    return max(facts, key=lambda fact: fact.as_of or EPOCH, default=UNKNOWN_REACHABILITY)
