"""Parsing and validation of the transfer spec that POST /ops/transfers receives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hstssim import checksums

DIRECTIONS = ("send", "receive")
OVERWRITE_POLICIES = ("never", "always", "diff", "older", "diff+older")
RESUME_POLICIES = ("none", "attrs", "sparse_csum", "full_csum")
RATE_POLICIES = ("fixed", "high", "fair", "low")
DEFAULT_OVERWRITE = "diff"  # ascp's default
DEFAULT_RESUME = "sparse_csum"  # OAS446 transferPostRequest default
DEFAULT_PORT = 33001
REQUIRED_FIELDS = ("direction", "paths", "remote_host")
# OAS446 requires token; node-api.md §3.2 says SSH credentials may stand in its place. The
# tolerant reading: a token, or remote_password, or ssh_private_key.
CREDENTIAL_FIELDS = ("token", "remote_password", "ssh_private_key")


class SpecError(ValueError):
    """The spec is malformed; the message is shown to the client in a 400 body."""


@dataclass(frozen=True)
class PathPair:
    """One entry of spec.paths."""

    source: str
    destination: str | None


@dataclass(frozen=True)
class TransferSpec:
    """The fields of a POSTed transfer spec that the simulator acts on."""

    direction: str
    remote_host: str
    remote_user: str
    token: str
    fasp_port: int
    ssh_port: int
    paths: tuple[PathPair, ...]
    source_root: str
    destination_root: str
    target_rate_kbps: int | None
    min_rate_kbps: int
    rate_policy: str
    overwrite: str
    resume_policy: str
    precalculate_job_size: bool
    tags: dict[str, Any] | None
    cookie: str | None
    title: str | None
    cipher: str
    create_dir: bool
    remote_access_key: str | None
    remote_password: str | None = None
    ssh_private_key: str | None = None
    sshfp: str | None = None

    @property
    def ssh_login(self) -> bool:
        """Whether the session logs in with SSH credentials rather than a token."""
        return bool(self.remote_password or self.ssh_private_key)

    file_checksum: str = "none"

    @property
    def token_type(self) -> str:
        """Return the start_spec token_type for the kind of token given."""
        if not self.token:
            return "none"
        if self.token.startswith("Basic "):
            return "basic_token"
        if self.token.startswith("Bearer "):
            return "bearer_token"
        return "auth_token"


def as_int(value: Any, name: str, minimum: int = 0) -> int:
    """Return value as an int (numeric strings accepted); raise SpecError otherwise."""
    if isinstance(value, bool):
        raise SpecError(f"{name} must be an integer")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if not isinstance(value, int):
        raise SpecError(f"{name} must be an integer")
    if value < minimum:
        raise SpecError(f"{name} must be at least {minimum}")
    return value


def as_bool(value: Any, name: str) -> bool:
    """Return value as a bool ("true"/"false"/"yes"/"no" strings accepted)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
        return value.lower() in ("true", "yes", "1")
    raise SpecError(f"{name} must be a boolean")


def _opt_str(body: dict[str, Any], name: str) -> str | None:
    """Return an optional string field, rejecting other types."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise SpecError(f"{name} must be a string")
    return value


def _choice(body: dict[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    """Return a string field restricted to allowed values."""
    value = _opt_str(body, name)
    if value is None:
        return default
    if value not in allowed:
        raise SpecError(f"{name} must be one of {', '.join(allowed)}")
    return value


def _paths(value: Any) -> tuple[PathPair, ...]:
    """Parse spec.paths: a non-empty list of {source, destination?} objects."""
    if not isinstance(value, list) or not value:
        raise SpecError("paths must be a non-empty array")
    pairs: list[PathPair] = []
    for item in value:
        if not isinstance(item, dict):
            raise SpecError("each paths entry must be an object")
        source = item.get("source")
        destination = item.get("destination")
        if not isinstance(source, str) or not source:
            raise SpecError("each paths entry needs a source")
        if destination is not None and not isinstance(destination, str):
            raise SpecError("paths destination must be a string")
        pairs.append(PathPair(source, destination or None))
    return tuple(pairs)


def parse_transfer_spec(body: Any) -> TransferSpec:
    """Validate a POST /ops/transfers body and return the parsed spec."""
    if not isinstance(body, dict):
        raise SpecError("the request body must be a JSON object (a transfer spec)")
    missing = [name for name in REQUIRED_FIELDS if body.get(name) in (None, "")]
    if all(body.get(name) in (None, "") for name in CREDENTIAL_FIELDS):
        missing.append("token")
    if missing:
        raise SpecError(f"missing required field(s): {', '.join(missing)}")
    nulls = sorted(name for name, value in body.items() if value is None)
    if nulls:
        raise SpecError(f"null values are not accepted, remove them first: {', '.join(nulls)}")
    for name in ("direction", "remote_host", *CREDENTIAL_FIELDS):
        if name in body and not isinstance(body[name], str):
            raise SpecError(f"{name} must be a string")
    if body["direction"] not in DIRECTIONS:
        raise SpecError("direction must be send or receive")
    tags = body.get("tags")
    if tags is not None and not isinstance(tags, dict):
        raise SpecError("tags must be an object")
    rate = body.get("target_rate_kbps")
    return TransferSpec(
        direction=body["direction"],
        remote_host=body["remote_host"],
        remote_user=_opt_str(body, "remote_user") or "xfer",
        token=body.get("token", ""),
        fasp_port=as_int(body.get("fasp_port", DEFAULT_PORT), "fasp_port", 1),
        ssh_port=as_int(body.get("ssh_port", DEFAULT_PORT), "ssh_port", 1),
        paths=_paths(body["paths"]),
        source_root=_opt_str(body, "source_root") or "",
        destination_root=_opt_str(body, "destination_root") or "",
        target_rate_kbps=None if rate is None else as_int(rate, "target_rate_kbps"),
        min_rate_kbps=as_int(body.get("min_rate_kbps", 0), "min_rate_kbps"),
        rate_policy=_choice(body, "rate_policy", RATE_POLICIES, "fair"),
        overwrite=_choice(body, "overwrite", OVERWRITE_POLICIES, DEFAULT_OVERWRITE),
        resume_policy=_choice(body, "resume_policy", RESUME_POLICIES, DEFAULT_RESUME),
        precalculate_job_size=as_bool(
            body.get("precalculate_job_size", False), "precalculate_job_size"
        ),
        tags=tags,
        cookie=_opt_str(body, "cookie"),
        title=_opt_str(body, "title"),
        cipher=_opt_str(body, "cipher") or "none",
        create_dir=as_bool(body.get("create_dir", True), "create_dir"),
        remote_access_key=_opt_str(body, "remote_access_key"),
        remote_password=_opt_str(body, "remote_password"),
        ssh_private_key=_opt_str(body, "ssh_private_key"),
        sshfp=_opt_str(body, "sshfp"),
        file_checksum=_choice(body, "file_checksum", checksums.CHOICES, checksums.NONE),
    )
