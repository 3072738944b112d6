"""What a user asks for: a job (source node and paths, destination, options, priority)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from orchestrator.domain.checksums import Algorithm
from orchestrator.domain.deadlines import DeadlinePolicy
from orchestrator.domain.paths import UnsafePath, clean_relative, confine
from orchestrator.domain.text import unreadable_character

Cipher = Literal["none", "aes-128", "aes-192", "aes-256", "aes-128-cfb", "aes-192-cfb",
                 "aes-256-cfb", "aes-128-gcm", "aes-192-gcm", "aes-256-gcm"]  # fmt: skip


MAX_RATE_KBPS = 100_000_000  # 100 Gbit/s: more than any FASP link


class TransferOptions(BaseModel):
    """Transfer spec options a job may set, with the values the Node API allows (§3.2)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    target_rate_kbps: int | None = Field(default=None, ge=1, le=MAX_RATE_KBPS)
    min_rate_kbps: int | None = Field(default=None, ge=0, le=MAX_RATE_KBPS)
    rate_policy: Literal["low", "fair", "high", "fixed"] | None = None
    cipher: Cipher | None = None
    overwrite: Literal["never", "always", "diff", "older", "diff+older"] | None = None
    resume_policy: Literal["none", "attrs", "sparse_csum", "full_csum"] = "sparse_csum"
    preserve_timestamps: bool = False
    symlink_policy: Literal["follow", "copy", "copy+force", "skip"] | None = None
    remove_after_transfer: bool = False
    move_after_transfer: str | None = Field(default=None, min_length=1, max_length=1024)
    precalculate_job_size: bool = True
    # Per-file checksums the node computes and reports (stored with the job's files).
    file_checksum: Algorithm | None = None
    # A completed transfer with a file lacking a checksum makes the job NEEDS_ATTENTION.
    require_checksums: bool = False

    @field_validator("move_after_transfer")
    @classmethod
    def _safe_move_target(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return clean_relative(value)
        except UnsafePath as exc:
            raise ValueError(str(exc)) from None

    @property
    def reads_checksums(self) -> bool:
        """Whether the job's files and their checksums are read and stored when it completes."""
        return self.file_checksum is not None or self.require_checksums

    def move_target(self, source_root: str) -> str | None:
        """Where the source node moves files after the transfer: under the source's root, like
        the source paths (a tenant never moves files into another tenant's tree)."""
        if self.move_after_transfer is None:
            return None
        return confine(source_root, self.move_after_transfer)

    def to_spec_fields(self, *, source_root: str) -> dict[str, Any]:
        """The transfer spec fields these options set (Node API names); paths are confined
        under ``source_root``, the source node's root."""
        fields: dict[str, Any] = {
            "target_rate_kbps": self.target_rate_kbps,
            "min_rate_kbps": self.min_rate_kbps,
            "rate_policy": self.rate_policy,
            "cipher": self.cipher,
            "overwrite": self.overwrite,
            "resume_policy": self.resume_policy,
            "symlink_policy": self.symlink_policy,
            "precalculate_job_size": self.precalculate_job_size,
            "move_after_transfer": self.move_target(source_root),
            "file_checksum": self.file_checksum,
        }
        if self.preserve_timestamps:
            fields["preserve_times"] = True
        if self.remove_after_transfer:
            fields["remove_after_transfer"] = True
        return {k: v for k, v in fields.items() if v is not None}


def checked_sources(paths: list[str]) -> list[str]:
    """Source paths made relative and safe; a ValueError names the one that is not."""
    cleaned = []
    for path in paths:
        try:
            relative = clean_relative(path)
        except UnsafePath as exc:
            raise ValueError(f"{path!r}: {exc}") from None
        if not relative:
            raise ValueError("a source path must name something under the node's root")
        cleaned.append(relative)
    return cleaned


def checked_destination(path: str) -> str:
    """A destination folder made relative and safe."""
    try:
        return clean_relative(path)
    except UnsafePath as exc:
        raise ValueError(str(exc)) from None


MAX_LABELS = 20
LABEL_KEY_LENGTH = 64
LABEL_VALUE_LENGTH = 256


def checked_labels(labels: dict[str, str]) -> dict[str, str]:
    """Labels whose keys and values are short, readable text; a ValueError names the bad one.

    Keys hold no '=' (a list filter is ``key=value``). Values may be empty.
    """
    for key, value in labels.items():
        shown = repr(key[:LABEL_KEY_LENGTH])
        if not 1 <= len(key) <= LABEL_KEY_LENGTH:
            raise ValueError(f"label key {shown}: 1 to {LABEL_KEY_LENGTH} characters")
        if "=" in key:
            raise ValueError(f"label key {shown}: '=' is not allowed in a key")
        if len(value) > LABEL_VALUE_LENGTH:
            raise ValueError(
                f"label {shown}: the value has {LABEL_VALUE_LENGTH} characters at most"
            )
        for text, what in ((key, "key"), (value, "value")):
            found = unreadable_character(text)
            if found is not None:
                raise ValueError(
                    f"label {shown}: control, invisible or bidirectional characters are not "
                    f"allowed in a {what} ({found})"
                )
    return labels


# Paths as a job or a schedule takes them: made relative, and refused if they could escape.
SourcePaths = Annotated[list[str], AfterValidator(checked_sources)]
DestinationPath = Annotated[str, AfterValidator(checked_destination)]
# Labels as a job or a schedule takes them (the count is bounded where they are used).
Labels = Annotated[dict[str, str], AfterValidator(checked_labels)]

NODE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
NodeName = Field(min_length=1, max_length=64, pattern=NODE_NAME_PATTERN)


class TransferMode(StrEnum):
    """Which node runs a job's transfer (and is polled for it)."""

    PUSH = "push"  # the source runs it and sends, with a token from the destination
    PULL = "pull"  # the destination runs it and fetches, with a token from the source


MAX_BATCH = 100  # jobs in one batch (POST /api/v1/jobs/batch, one create_jobs message)
MIN_DESTINATIONS = 2
MAX_DESTINATIONS = 16


class JobDestination(BaseModel):
    """One destination of a job: a node and a folder under its root."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    node: str = NodeName
    path: DestinationPath = Field(min_length=1, max_length=1024)


def checked_destinations(
    value: list[JobDestination] | None, info: ValidationInfo
) -> list[JobDestination] | None:
    """A fan-out's destinations, or None when the single destination's fields are given (a
    ValueError when both or neither are, or a destination is listed twice)."""
    single = [info.data.get("destination_node"), info.data.get("destination_path")]
    if value is None:
        if None in single:
            raise ValueError(
                "give destination_node and destination_path, or destinations (2 or more)"
            )
        return None
    if any(part is not None for part in single):
        raise ValueError("give either destinations or destination_node/destination_path, not both")
    seen: set[tuple[str, str]] = set()
    for target in value:
        if (target.node, target.path) in seen:
            raise ValueError(f"{target.node}:{target.path} is listed twice")
        seen.add((target.node, target.path))
    return value


def targets_of(
    destinations: list[JobDestination] | None, node: str | None, path: str | None
) -> list[JobDestination]:
    """Every destination, in the order given (one when there is no fan-out)."""
    if destinations is not None:
        return list(destinations)
    assert node is not None
    assert path is not None
    return [JobDestination(node=node, path=path)]


class JobSpec(BaseModel):
    """A request to copy paths of one node to a folder of another, or (``destinations``) to
    folders of several others at once: a fan-out."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source_node: str = NodeName
    source_paths: SourcePaths = Field(min_length=1, max_length=1000)
    destination_node: str | None = Field(
        default=None, min_length=1, max_length=64, pattern=NODE_NAME_PATTERN
    )
    destination_path: DestinationPath | None = Field(default=None, min_length=1, max_length=1024)
    # After the single destination's fields: its validator reads them.
    destinations: list[JobDestination] | None = Field(
        default=None,
        min_length=MIN_DESTINATIONS,
        max_length=MAX_DESTINATIONS,
        validate_default=True,
    )
    options: TransferOptions = TransferOptions()
    priority: int = Field(default=0, ge=-100, le=100)
    max_attempts: int = Field(default=3, ge=1, le=20)
    labels: Labels = Field(default_factory=dict, max_length=MAX_LABELS)
    mode: TransferMode = Field(
        default=TransferMode.PUSH,
        description="push: the source node runs the transfer; pull: the destination node runs "
        "it (for a source that cannot open connections to the destination)",
    )
    deadline: AwareDatetime | None = Field(
        default=None, description="when the job must be done by (a time with its zone)"
    )
    deadline_policy: DeadlinePolicy = Field(
        default="warn",
        description="a deadline the link's measured rate cannot meet: 'warn' accepts the job "
        "with a warning, 'reject' refuses it (422)",
    )

    @field_validator("destinations")
    @classmethod
    def _one_way_to_say_where(
        cls, value: list[JobDestination] | None, info: ValidationInfo
    ) -> list[JobDestination] | None:
        return checked_destinations(value, info)

    def targets(self) -> list[JobDestination]:
        """Every destination of the job, in the order given (one for an ordinary job)."""
        return targets_of(self.destinations, self.destination_node, self.destination_path)


def job_label(
    job_id: str, source: str, source_path: str, destination: str, destination_path: str
) -> str:
    """A job as an operator reads it in one line: ``job 1a2b3c4d node-a:/out → node-b:/in``."""
    return f"job {job_id[:8]} {source}:{source_path} → {destination}:{destination_path}"
