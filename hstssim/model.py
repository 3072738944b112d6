"""In-memory records of transfers, their sessions and their files (plain data, no I/O)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from hstssim.spec import TransferSpec

WAITING = "waiting"
RUNNING = "running"
PAUSED = "paused"
PARTIALLY_COMPLETED = "partially_completed"
COMPLETED = "completed"
FAILED = "failed"
CANCELED = "canceled"
STATUSES = (WAITING, RUNNING, PAUSED, PARTIALLY_COMPLETED, COMPLETED, FAILED, CANCELED)
TERMINAL = frozenset({COMPLETED, FAILED, CANCELED})
# active_only=true lists these (OAS446: "running transfers (waiting or running)").
ACTIVE = frozenset({WAITING, RUNNING})


def now_usec() -> int:
    """Return the wall clock in microseconds since the epoch."""
    return time.time_ns() // 1000


@dataclass
class Precalc:
    """Job size computed before the first byte moves (precalculate_job_size)."""

    bytes_expected: int = 0
    files_expected: int = 0
    directories_expected: int = 0
    status: str = "ready"


@dataclass
class FileRecord:
    """One file of a transfer, as files[] reports it."""

    id: str
    path: str
    size: int
    session_id: str
    start_time_usec: int
    status: str = "transferring"
    start_byte: int = 0
    bytes_written: int = 0
    end_time_usec: int = 0
    error_code: int = 0
    error_desc: str = ""
    skipped: bool = False
    checksum_type: str = "none"
    checksum: str | None = None


@dataclass
class SessionRecord:
    """One ascp session of a transfer; a node-side retry starts a new one."""

    id: str
    retry_count: int
    start_time_usec: int
    target_rate_kbps: int
    min_rate_kbps: int
    status: str = RUNNING
    end_time_usec: int = 0
    bytes_transferred: int = 0
    bytes_written: int = 0
    files_completed: int = 0
    files_skipped: int = 0
    files_failed: int = 0
    directories_completed: int = 0
    error_code: int = 0
    error_desc: str = ""
    server_node_id: str = ""
    client_ip_address: str = ""
    server_ip_address: str = ""
    network_delay_usec: int = 0
    args_scan: int = 0
    files_planned: int = 0
    dirs_planned: int = 0
    precalc: Precalc | None = None
    share_kbps: float | None = None  # the rate its links give it (None: not limited by them)

    def elapsed_usec(self) -> int:
        """Return how long the session ran (so far)."""
        end = self.end_time_usec or now_usec()
        return max(0, end - self.start_time_usec)


@dataclass(frozen=True)
class ForeignLoad:
    """What another client's transfer moves: bytes (None: until canceled) with a peer node."""

    peer: str
    total_bytes: int | None


@dataclass
class Transfer:
    """A transfer the node runs as the FASP client (it received POST /ops/transfers)."""

    id: str
    spec: TransferSpec
    raw_spec: dict[str, Any]
    tags: dict[str, Any] | None
    target_rate_kbps: int
    min_rate_kbps: int
    rate_policy: str
    status: str = WAITING
    sessions: list[SessionRecord] = field(default_factory=list)
    files: dict[str, FileRecord] = field(default_factory=dict)
    directories: set[str] = field(default_factory=set)
    precalc: Precalc | None = None
    error_code: int = 0
    error_desc: str = ""
    error_code_as_string: bool = False
    created_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    end_time_usec: int = 0
    last_seq: int | None = None
    last_change: float = field(default_factory=time.time)
    last_logged: float = 0.0
    foreign: ForeignLoad | None = None

    @property
    def is_terminal(self) -> bool:
        """Tell whether the transfer reached completed, failed or canceled."""
        return self.status in TERMINAL

    @property
    def bytes_transferred(self) -> int:
        """Return the bytes sent over all sessions."""
        return sum(s.bytes_transferred for s in self.sessions)

    @property
    def bytes_written(self) -> int:
        """Return the bytes written over all sessions."""
        return sum(s.bytes_written for s in self.sessions)

    @property
    def files_completed(self) -> int:
        """Return the number of distinct files transferred."""
        return sum(1 for f in self.files.values() if f.status == COMPLETED and not f.skipped)

    @property
    def files_skipped(self) -> int:
        """Return the number of files the overwrite policy left alone."""
        return sum(1 for f in self.files.values() if f.skipped)

    @property
    def start_time_usec(self) -> int:
        """Return when the first session started (0 while waiting)."""
        return self.sessions[0].start_time_usec if self.sessions else 0

    def elapsed_usec(self) -> int:
        """Return the time from the first session start to the end (or now)."""
        if not self.sessions:
            return 0
        end = self.end_time_usec or now_usec()
        return max(0, end - self.start_time_usec)

    def avg_rate_kbps(self) -> float:
        """Return the average rate over the session time, in kilobits per second."""
        seconds = sum(s.elapsed_usec() for s in self.sessions) / 1e6
        if seconds <= 0:
            return 0.0
        return round(self.bytes_transferred * 8 / 1000 / seconds, 2)
