"""Value objects for node transfers: specs we post, snapshots we read, feed pages."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from orchestrator.domain.ascp import ErrorClass, classify, describe


class TransferStatus(StrEnum):
    """A node transfer's status in our words (the wire spellings stay in nodeapi)."""

    WAITING = "waiting"
    RUNNING = "running"
    PAUSED = "paused"
    RETRYING = "retrying"  # the node's partially_completed: a session failed, the node retries
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"
    UNKNOWN = "unknown"  # the node answered 200 with an empty body (node-api.md §4.2)

    @property
    def is_terminal(self) -> bool:
        """Whether the node will never change this transfer again."""
        return self in _TERMINAL


_TERMINAL = frozenset({TransferStatus.COMPLETED, TransferStatus.FAILED, TransferStatus.CANCELED})


# Every transfer we start carries {"orchestrator": {"attempt": <attempt uuid>, "job": <job id>}}
# in its spec's tags; the feed is filtered by, and a lost POST is looked up by, this key.
TAG_KEY = "orchestrator.attempt"


def attempt_tags(attempt_id: str, job_id: str) -> dict[str, Any]:
    """The tags that tie a node transfer to its attempt (DESIGN.md rule 2)."""
    return {"orchestrator": {"attempt": attempt_id, "job": job_id}}


class TransferFailure(BaseModel):
    """Why a transfer failed: the ascp code, the node's text, and what to do about it."""

    model_config = ConfigDict(frozen=True)

    code: int
    text: str = ""

    @property
    def mnemonic(self) -> str:
        """The ascp name of the code, e.g. CONNECTION_LOST."""
        return describe(self.code).mnemonic

    @property
    def error_class(self) -> ErrorClass:
        """Retryable, configuration, permanent or unexplained."""
        return classify(self.code, self.text)

    @property
    def retryable(self) -> bool:
        """Whether a new attempt with a fresh token may succeed."""
        return self.error_class is ErrorClass.RETRYABLE

    def __str__(self) -> str:
        text = self.text or describe(self.code).meaning
        return f"ascp error {self.code} ({self.mnemonic}): {text}"


class TransferSnapshot(BaseModel):
    """What one node said about one transfer at one moment."""

    model_config = ConfigDict(frozen=True)

    remote_id: str
    status: TransferStatus
    bytes_transferred: int = 0
    bytes_written: int = 0
    bytes_expected: int | None = None
    files_completed: int = 0
    files_skipped: int = 0
    files_failed: int = 0
    files_expected: int | None = None
    rate_kbps: float | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error: TransferFailure | None = None
    tags: dict[str, Any] = Field(default_factory=dict)

    def tag(self, dotted: str) -> Any:
        """The value at a dotted path in the transfer's tags, or None."""
        node: Any = self.tags
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node


class FeedPage(BaseModel):
    """One page of a node's change feed and the cursor that follows it."""

    model_config = ConfigDict(frozen=True)

    transfers: tuple[TransferSnapshot, ...]
    next_token: str | None


class PathPair(BaseModel):
    """One source path, with an optional destination name, for a transfer spec."""

    model_config = ConfigDict(frozen=True)

    source: str = Field(min_length=1)
    destination: str | None = None


class UploadRequest(BaseModel):
    """What we ask the destination's upload_setup for (node-api.md §2.1)."""

    model_config = ConfigDict(frozen=True)

    destination_root: str = Field(min_length=1)
    remote_host: str | None = None
    token_life_seconds: int | None = Field(default=None, gt=0)
    tags: dict[str, Any] | None = None


class DownloadRequest(BaseModel):
    """What we ask a node's download_setup for (node-api.md §2.1)."""

    model_config = ConfigDict(frozen=True)

    sources: tuple[PathPair, ...] = Field(min_length=1)
    source_root: str | None = None
    remote_host: str | None = None
    token_life_seconds: int | None = Field(default=None, gt=0)


class TransferSpec(BaseModel):
    """A transfer spec as a node returns it from *_setup; the token is a secret.

    Known fields are typed; every other field the node sent is kept as is so it can be
    posted back unchanged (node-api.md §3.2 step 1).
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    token: SecretStr | None = None
    # An SSH endpoint's credentials, in place of a token (node-api.md §3.2, "SSH credentials").
    remote_password: SecretStr | None = None
    ssh_private_key: SecretStr | None = None
    direction: str
    remote_host: str
    remote_user: str | None = None
    fasp_port: int | None = None
    ssh_port: int | None = None
    destination_root: str | None = None
    source_root: str | None = None
    paths: tuple[dict[str, str], ...] = ()
    tags: dict[str, Any] | None = None

    def extras(self) -> dict[str, Any]:
        """The fields the node sent that this model does not name."""
        return dict(self.model_extra or {})

    def for_source(
        self,
        paths: list[PathPair],
        *,
        source_root: str | None = None,
        tags: dict[str, Any] | None = None,
        remote_host: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> TransferSpec:
        """The spec to post on the source node: our paths and tags, the destination's token."""
        merged_tags = _merge_tags(self.tags, tags)
        update: dict[str, Any] = {
            "paths": tuple(p.model_dump(exclude_none=True) for p in paths),
            "tags": merged_tags,
        }
        if source_root is not None:
            update["source_root"] = source_root
        if remote_host is not None:
            update["remote_host"] = remote_host
        data = {**self.model_dump(), **(options or {}), **update}
        for secret in SPEC_SECRETS:
            data[secret] = getattr(self, secret)
        return TransferSpec.model_validate(data)

    def to_body(self) -> dict[str, Any]:
        """The JSON body for POST /ops/transfers, with every null removed (node-api.md §3.2)."""
        raw = self.model_dump()
        for name in SPEC_SECRETS:
            secret: SecretStr | None = getattr(self, name)
            raw[name] = None if secret is None else secret.get_secret_value()
        body: dict[str, Any] = _drop_nulls(raw)
        return body


SPEC_SECRETS = ("token", "remote_password", "ssh_private_key")  # revealed in to_body only


def _merge_tags(base: dict[str, Any] | None, ours: dict[str, Any] | None) -> dict[str, Any] | None:
    if not base and not ours:
        return None
    merged = dict(base or {})
    merged.update(ours or {})
    return merged


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_drop_nulls(v) for v in value]
    return value


class FileEntry(BaseModel):
    """One file or folder on a node, as /files/browse or /files/info describe it."""

    model_config = ConfigDict(frozen=True)

    path: str
    name: str
    type: str
    size: int = 0
    modified_at: datetime | None = None


class TransferFile(BaseModel):
    """One file of a node transfer, as its files[] list reports it (node-api.md §5.1)."""

    model_config = ConfigDict(frozen=True)

    path: str
    status: str  # transferring | completed | failed, as the node spells it
    size: int = 0
    bytes_written: int = 0
    start_byte: int = 0  # above 0: the file resumed from there
    error_code: int = 0
    error_text: str = ""
    checksum_type: str | None = None  # "none" when the transfer asked for no checksum
    checksum: str | None = None


class NodeInfo(BaseModel):
    """What GET /info says about a node (node-api.md §7.1)."""

    model_config = ConfigDict(frozen=True)

    version: str | None = None
    node_id: str | None = None
    transfer_user: str | None = None
    docroot: str | None = None
    activity_logging: bool | None = None
    current_time: datetime | None = None
    capabilities: dict[str, Any] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)


def bytes_per_second(kbps: float | None) -> float | None:
    """A node's rate (kilobits per second, as the Node API gives it) in bytes per second."""
    return None if kbps is None else kbps * 1000 / 8


def eta_seconds(done: int, expected: int | None, rate_kbps: float | None) -> float | None:
    """Seconds left at this rate; None without a rate or an expected size."""
    rate = bytes_per_second(rate_kbps)
    if not rate or not expected:
        return None
    return max(0, expected - done) / rate
