"""Tolerant pydantic models of Node API bodies; they never leave this package.

Tolerance rules (node-api.md §5, §8.4, §10): unknown fields are kept, ``error_code`` may be an
int or a string, a file's error text may be ``error_desc`` or ``error_description``, ``tags``
and ``sshfp`` may be null, and times are microseconds since the epoch (0 or null while unset).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from orchestrator.domain.transfers import (
    FileEntry,
    NodeInfo,
    TransferFailure,
    TransferFile,
    TransferSnapshot,
    TransferStatus,
)


def _lenient_int(value: Any) -> int:
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    try:
        return int(str(value).strip())
    except ValueError:
        return 0


def _lenient_float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _lenient_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None


LenientInt = Annotated[int, BeforeValidator(_lenient_int)]
LenientDatetime = Annotated[datetime | None, BeforeValidator(_lenient_datetime)]
LenientFloat = Annotated[float | None, BeforeValidator(_lenient_float)]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class WireErrorDetail(_Wire):
    """The inside of the generic error body; every text variant IBM's CLI reads."""

    code: LenientInt = 0
    reason: str | None = None
    user_message: str | None = None
    description: str | None = None
    internal_message: str | None = None

    def text(self) -> str:
        """The most helpful text the node gave."""
        for candidate in (self.user_message, self.description, self.internal_message, self.reason):
            if candidate:
                return candidate
        return ""


class WirePrecalc(_Wire):
    """Job size pre-calculation (transfer level per IBM's CLI, session level per the spec)."""

    status: str | None = None
    bytes_expected: LenientInt = 0
    files_expected: LenientInt = 0
    files_failed: LenientInt = 0


class WireSourceStatistics(_Wire):
    """Session source statistics; only the counters we use are named."""

    files_xfer_fail: LenientInt = 0
    files_xfer_noxfer: LenientInt = 0


class WireSession(_Wire):
    """One FASP session of a transfer."""

    id: str | None = None
    status: str | None = None
    bytes_transferred: LenientInt = 0
    files_completed: LenientInt = 0
    avg_rate_kbps: LenientFloat = None
    calc_rate_kbps: LenientFloat = None
    error_code: LenientInt = 0
    error_desc: str | None = None
    precalc: WirePrecalc | None = None
    source_statistics: WireSourceStatistics | None = None


class WireFile(_Wire):
    """One file of a transfer (files[] without a view)."""

    id: str | None = None
    path: str | None = None
    status: str | None = None
    size: LenientInt = 0
    bytes_written: LenientInt = 0
    error_code: LenientInt = 0
    error_desc: str | None = None
    error_description: str | None = None
    start_byte: LenientInt = 0
    checksum_type: str | None = None
    checksum: str | None = None

    def to_file(self) -> TransferFile:
        """Our view of this file; "No error" is the node's way of saying there is none."""
        text = self.error_description or self.error_desc or ""
        return TransferFile(
            path=self.path or "",
            status=(self.status or "unknown").lower(),
            size=self.size,
            bytes_written=self.bytes_written,
            start_byte=self.start_byte,
            error_code=self.error_code,
            error_text="" if text.strip().lower() == "no error" else text,
            checksum_type=self.checksum_type,
            checksum=self.checksum or None,
        )


class WireStartSpec(_Wire):
    """The normalised spec a transfer started with (not the raw POST body)."""

    tags: dict[str, Any] | None = None


_STATUSES = {
    "waiting": TransferStatus.WAITING,
    "running": TransferStatus.RUNNING,
    "paused": TransferStatus.PAUSED,
    "partially_completed": TransferStatus.RETRYING,
    "completed": TransferStatus.COMPLETED,
    "failed": TransferStatus.FAILED,
    "canceled": TransferStatus.CANCELED,
    "cancelled": TransferStatus.CANCELED,  # SDK spelling; not expected from a node, harmless
}


def _usec_to_datetime(usec: int) -> datetime | None:
    if usec <= 0:
        return None
    return datetime.fromtimestamp(usec / 1_000_000, tz=UTC)


class WireTransfer(_Wire):
    """A transfer object from GET /ops/transfers[/{id}] (node-api.md §5)."""

    id: str
    status: str | None = None
    start_spec: WireStartSpec | None = None
    tags: dict[str, Any] | None = None
    sessions: list[WireSession] = Field(default_factory=list)
    files: list[WireFile] | None = None
    bytes_transferred: LenientInt = 0
    bytes_written: LenientInt = 0
    files_completed: LenientInt = 0
    files_skipped: LenientInt = 0
    avg_rate_kbps: LenientFloat = None
    start_time_usec: LenientInt = 0
    end_time_usec: LenientInt = 0
    error_code: LenientInt = 0
    error_desc: str | None = None
    precalc: WirePrecalc | None = None

    def to_snapshot(self) -> TransferSnapshot:
        """Our view of this transfer."""
        status = _STATUSES.get((self.status or "").lower(), TransferStatus.UNKNOWN)
        precalc = self._ready_precalc()
        return TransferSnapshot(
            remote_id=self.id,
            status=status,
            bytes_transferred=self.bytes_transferred,
            bytes_written=self.bytes_written,
            bytes_expected=precalc.bytes_expected if precalc else None,
            files_completed=self.files_completed,
            files_skipped=self.files_skipped,
            files_failed=self._files_failed(),
            files_expected=precalc.files_expected if precalc else None,
            rate_kbps=self._rate(),
            started_at=_usec_to_datetime(self.start_time_usec),
            ended_at=_usec_to_datetime(self.end_time_usec) if status.is_terminal else None,
            error=self._failure(status),
            tags=self._tags(),
        )

    def _ready_precalc(self) -> WirePrecalc | None:
        candidates = [self.precalc] + [s.precalc for s in self.sessions]
        for precalc in candidates:
            if precalc is not None and (precalc.status or "").lower() == "ready":
                return precalc
        return None

    def _files_failed(self) -> int:
        if self.files is not None:
            return sum(1 for f in self.files if (f.status or "").lower() == "failed")
        stats = [s.source_statistics for s in self.sessions if s.source_statistics]
        return sum(st.files_xfer_fail for st in stats)

    def _rate(self) -> float | None:
        if self.avg_rate_kbps is not None:
            return self.avg_rate_kbps
        rates = [s.avg_rate_kbps for s in self.sessions if s.avg_rate_kbps is not None]
        return sum(rates) if rates else None

    def _failure(self, status: TransferStatus) -> TransferFailure | None:
        code, text = self.error_code, self.error_desc or ""
        if code == 0:
            for session in reversed(self.sessions):
                if session.error_code:
                    code, text = session.error_code, session.error_desc or ""
                    break
        if status is TransferStatus.FAILED or code != 0:
            return TransferFailure(code=code, text=text)
        return None

    def _tags(self) -> dict[str, Any]:
        if self.start_spec is not None and self.start_spec.tags:
            return self.start_spec.tags
        return self.tags or {}


class WireSetupItem(_Wire):
    """One element of transfer_specs[]: a spec, or an error at either position (§2.3)."""

    transfer_spec: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    def item_error(self) -> WireErrorDetail | None:
        """The error of this item, wherever the node put it."""
        if isinstance(self.error, dict):
            return WireErrorDetail.model_validate(self.error)
        inner = (self.transfer_spec or {}).get("error")
        if isinstance(inner, dict):
            return WireErrorDetail.model_validate(inner)
        return None


class WireSetupResponse(_Wire):
    """The body of a 200 from /files/upload_setup or /files/download_setup."""

    transfer_specs: list[WireSetupItem] = Field(default_factory=list)


class WireNamedValue(_Wire):
    """A {name, value} pair as /info lists capabilities and settings."""

    name: str
    value: Any = None


class WireInfo(_Wire):
    """GET /info (node-api.md §7.1)."""

    version: str | None = None
    node_id: str | None = None
    transfer_user: str | None = None
    docroot: str | None = None
    current_time: LenientDatetime = None
    transfer_activity_reporting: str | bool | None = None
    capabilities: list[WireNamedValue] = Field(default_factory=list)
    settings: list[WireNamedValue] = Field(default_factory=list)

    def to_info(self) -> NodeInfo:
        """Our view of the node."""
        reporting = self.transfer_activity_reporting
        if isinstance(reporting, str):
            activity: bool | None = reporting.strip().lower() in {"yes", "true", "1", "on"}
        else:
            activity = reporting
        return NodeInfo(
            version=self.version,
            node_id=self.node_id,
            transfer_user=self.transfer_user,
            docroot=self.docroot,
            activity_logging=activity,
            current_time=self.current_time,
            capabilities={c.name: c.value for c in self.capabilities},
            settings={s.name: s.value for s in self.settings},
        )


class WirePathEntry(_Wire):
    """A file entry from /files/browse or /files/info; may carry a per-path error."""

    path: str
    basename: str | None = None
    type: str | None = None
    size: LenientInt = 0
    mtime: LenientDatetime = None
    error: WireErrorDetail | None = None

    def to_entry(self) -> FileEntry:
        """Our view of the entry."""
        name = self.basename or self.path.rstrip("/").rsplit("/", 1)[-1]
        return FileEntry(
            path=self.path,
            name=name,
            type=self.type or "file",
            size=self.size,
            modified_at=self.mtime,
        )


class WireBrowse(_Wire):
    """POST /files/browse response."""

    self_: WirePathEntry | None = Field(default=None, alias="self")
    items: list[WirePathEntry] = Field(default_factory=list)
    item_count: LenientInt = 0
    total_count: LenientInt = 0


class WirePathList(_Wire):
    """POST /files/info response."""

    paths: list[WirePathEntry] = Field(default_factory=list)
