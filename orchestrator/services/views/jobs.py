"""Jobs as readers see them: one projection (JobView) for the API, the dashboard and the CLI."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.db.tables import AttemptRow, JobEventRow, JobLabelRow, JobRow, NodeRow
from orchestrator.domain import units
from orchestrator.domain.jobs import TransferMode, job_label
from orchestrator.domain.states import POSTED, SETTLED, JobState
from orchestrator.domain.transfers import bytes_per_second, eta_seconds
from orchestrator.services.context import ServiceContext
from orchestrator.services.conveyor.fanout import parts_of
from orchestrator.services.conveyor.jobs import JobNotFound, JobRejected, get_job
from orchestrator.services.events import events_of
from orchestrator.services.nodes.registry import node_names


class BadCursor(JobRejected):
    """A page cursor this API did not hand out."""


@dataclass(frozen=True)
class DestinationView:
    """One destination of a fan-out job: its part (an ordinary job) and how far it got."""

    node: str
    path: str
    job_id: str
    state: str
    bytes: int
    files: int
    error: str | None


def destination_view(part: JobRow, names: dict[int, str]) -> DestinationView:
    """A fan-out part as its parent lists it."""
    settled_badly = part.state in (JobState.FAILED, JobState.NEEDS_ATTENTION)
    return DestinationView(
        node=names.get(part.destination_node_id, "?"),
        path=part.destination_path,
        job_id=part.id,
        state=part.state,
        bytes=part.bytes_transferred,
        files=part.files_completed,
        error=(part.reason or part.error_text) if settled_badly else None,
    )


@dataclass
class JobView:
    """A job with its nodes' names and derived figures, as every reader shows it."""

    id: str
    state: str
    source_node: str
    source_paths: list[str]
    destination_node: str
    destination_path: str
    options: dict[str, object]
    priority: int
    labels: dict[str, str]
    schedule_id: str | None
    attempts: int  # node transfers tried (attempts that never reached the node do not count)
    max_attempts: int
    bytes_transferred: int
    bytes_expected: int | None
    files_completed: int
    files_expected: int | None
    files_skipped: int  # already at the destination, so not moved
    rate_kbps: float | None
    eta_seconds: float | None  # while running, at the current rate
    waiting_reason: str | None  # while queued
    reason: str | None
    error_code: int | None
    error_text: str | None
    cancel_requested: bool
    created_at: datetime
    updated_at: datetime
    state_changed_at: datetime
    finished_at: datetime | None
    next_attempt_at: datetime | None  # while waiting to retry
    acknowledged_at: datetime | None  # a person has seen this failure (by whom: the token)
    acknowledged_by: str | None
    deadline: datetime | None  # when the job must be done by
    eta: datetime | None  # when it is expected to end (while it is not over)
    at_risk: bool  # expected after its deadline
    allocation_note: str | None = None  # on a link with a budget: why its rate, or why paused
    mode: str = "push"  # push | pull
    runs_on: str = ""  # the node that runs the transfer: the source, or for a pull the destination
    parent_id: str | None = None  # a fan-out's part: the job it is one destination of
    destinations: list[DestinationView] = field(default_factory=list)  # a fan-out's parts
    attempt_list: list[AttemptRow] = field(default_factory=list)
    events: list[JobEventRow] = field(default_factory=list)

    @property
    def deadline_missed(self) -> bool:
        """It ended (neither canceled nor still open) after its deadline."""
        return (
            self.deadline is not None
            and self.finished_at is not None
            and self.state != JobState.CANCELED
            and self.finished_at > self.deadline
        )

    @property
    def rate_bytes(self) -> float | None:
        """Bytes per second while running."""
        return bytes_per_second(self.rate_kbps) if self.state == JobState.RUNNING else None

    @property
    def fraction(self) -> float | None:
        """How much of the expected bytes moved (0..1), when the node said how many to expect.

        A completed job is whole even when the node skipped files it counted as expected."""
        if self.state == JobState.COMPLETED:
            return 1.0
        if not self.bytes_expected:
            return None
        return min(1.0, self.bytes_transferred / self.bytes_expected)

    @property
    def nothing_to_move(self) -> bool:
        """Completed without moving anything: every file was already at the destination."""
        return (
            self.state == JobState.COMPLETED
            and self.bytes_transferred == 0
            and self.files_completed == 0
            and self.files_skipped > 0
        )

    @property
    def progress(self) -> str:
        """What moved, in words: '42% · 1.50 MB of 3.60 MB · 3 of 10 files · at 12.0 Mbps'."""
        if self.nothing_to_move:
            return units.up_to_date(self.files_skipped)
        parts = []
        if self.fraction is not None and self.state != JobState.COMPLETED:
            parts.append(f"{self.fraction * 100:.0f}%")
        moved = units.size(self.bytes_transferred)
        if self.bytes_expected and self.state != JobState.COMPLETED:
            moved += f" of {units.size(self.bytes_expected)}"
        parts.append(moved)
        if self.files_expected and self.state != JobState.COMPLETED:
            parts.append(f"{self.files_completed} of {units.files(self.files_expected)}")
        else:
            parts.append(units.files(self.files_completed))
        if self.files_skipped:
            parts.append(f"{self.files_skipped} already there")
        if self.state == JobState.RUNNING and self.rate_kbps:
            parts.append(f"at {units.bitrate(self.rate_kbps)}")
        return " · ".join(parts)


def project(job: JobRow, names: dict[int, str]) -> JobView:
    """The view of a job row (``names``: node names by id)."""
    running = job.state == JobState.RUNNING
    runner = job.destination_node_id if job.mode == TransferMode.PULL else job.source_node_id
    eta = eta_seconds(job.bytes_transferred, job.bytes_expected, job.rate_kbps) if running else None
    return JobView(
        id=job.id,
        state=job.state,
        source_node=names.get(job.source_node_id, "?"),
        source_paths=[p["source"] for p in job.source_paths],
        destination_node=names.get(job.destination_node_id, "?"),
        destination_path=job.destination_path,
        options=dict(job.options),
        priority=job.priority,
        labels=dict(job.labels or {}),
        schedule_id=job.schedule_id,
        attempts=job.attempt_count - job.submit_failures,
        max_attempts=job.max_attempts,
        bytes_transferred=job.bytes_transferred,
        bytes_expected=job.bytes_expected,
        files_completed=job.files_completed,
        files_expected=job.files_expected,
        files_skipped=job.files_skipped,
        rate_kbps=job.rate_kbps,
        eta_seconds=None if eta is None else round(eta, 1),
        waiting_reason=job.waiting_reason if job.state == JobState.QUEUED else None,
        reason=job.reason,
        error_code=job.error_code,
        error_text=job.error_text,
        cancel_requested=job.cancel_requested,
        created_at=job.created_at,
        updated_at=job.updated_at,
        state_changed_at=job.state_changed_at,
        finished_at=job.finished_at,
        next_attempt_at=job.next_attempt_at if job.state == JobState.RETRY_WAIT else None,
        acknowledged_at=job.acknowledged_at,
        acknowledged_by=job.acknowledged_by,
        mode=job.mode,
        runs_on=names.get(runner, "?"),
        deadline=job.deadline,
        eta=None if JobState(job.state) in SETTLED else job.eta,
        at_risk=job.at_risk and JobState(job.state) not in SETTLED,
        parent_id=job.parent_id,
        allocation_note=job.allocation_note if job.state in POSTED else None,
    )


def show_job(ctx: ServiceContext, job_id: str) -> JobView:
    """One job with its attempts and its event log (a fan-out job: its destinations too)."""
    with ctx.sessions() as session:
        job = get_job(session, job_id)
        names = node_names(session)
        view = project(job, names)
        if job.is_parent:
            view.destinations = [destination_view(p, names) for p in parts_of(session, job_id)]
        view.attempt_list = attempts_of(session, job_id)
        view.events = events_of(session, job_id)
        return view


def attempts_of(session: Session, job_id: str) -> list[AttemptRow]:
    """A job's attempts, oldest first."""
    return list(
        session.scalars(
            select(AttemptRow).where(AttemptRow.job_id == job_id).order_by(AttemptRow.number)
        )
    )


@dataclass(frozen=True)
class JobPage:
    """A page of jobs, newest first, and the cursor of the next one (None on the last)."""

    items: list[JobView]
    next_cursor: str | None


def find_jobs(
    ctx: ServiceContext, where: JobFilter, *, limit: int = 50, cursor: str | None = None
) -> JobPage:
    """Jobs matching every filter given, a page at a time."""
    with ctx.sessions() as session:
        rows, next_cursor = _rows(session, where, limit=limit, cursor=cursor)
        names = node_names(session)
        return JobPage([project(row, names) for row in rows], next_cursor)


@dataclass(frozen=True)
class JobFilter:
    """What a job list may be narrowed to."""

    states: tuple[str, ...] = ()
    node: str | None = None
    schedule_id: str | None = None
    label: tuple[str, str] | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    path: str | None = None  # a part of a source path or of the destination path, any case
    parts: bool = False  # list fan-out parts as well (by default their parent stands for them)


def _rows(
    session: Session, where: JobFilter, *, limit: int, cursor: str | None
) -> tuple[list[JobRow], str | None]:
    """Job rows newest first, and the cursor of the next page (None on the last page)."""
    query = select(JobRow)
    if not where.parts:
        query = query.where(JobRow.parent_id.is_(None))
    if where.states:
        query = query.where(JobRow.state.in_(where.states))
    if where.node:
        node_id = session.scalar(select(NodeRow.id).where(NodeRow.name == where.node))
        if node_id is None:
            return [], None
        query = query.where(
            (JobRow.source_node_id == node_id) | (JobRow.destination_node_id == node_id)
        )
    if where.schedule_id:
        query = query.where(JobRow.schedule_id == where.schedule_id)
    if where.created_after:
        query = query.where(JobRow.created_at >= where.created_after)
    if where.created_before:
        query = query.where(JobRow.created_at < where.created_before)
    if where.path:
        query = query.where(
            JobRow.source_paths_text.icontains(where.path, autoescape=True)
            | JobRow.destination_path.icontains(where.path, autoescape=True)
        )
    if cursor:
        created, job_id = _decode_cursor(cursor)
        query = query.where(
            (JobRow.created_at < created) | ((JobRow.created_at == created) & (JobRow.id < job_id))
        )
    if where.label:
        # An index lookup in job_labels: a label nobody has costs nothing, whatever the table.
        key, value = where.label
        labelled = select(JobLabelRow.job_id).where(
            JobLabelRow.key == key, JobLabelRow.value == value
        )
        query = query.where(JobRow.id.in_(labelled))
    query = query.order_by(JobRow.created_at.desc(), JobRow.id.desc())
    rows = list(session.scalars(query.limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (_encode_cursor(rows[-1]) if more and rows else None)


def _encode_cursor(job: JobRow) -> str:
    raw = f"{job.created_at.isoformat()}|{job.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, job_id = raw.split("|", 1)
        return datetime.fromisoformat(created), job_id
    except (ValueError, UnicodeDecodeError):
        raise BadCursor("cursor", "not a cursor this API returned") from None


def failure_summary(ctx: ServiceContext, job_id: str) -> str:
    """One line on why a job ended badly: its state, the node's code and text, or the reason."""
    view = show_job(ctx, job_id)
    why = view.reason or "no reason recorded"
    if view.error_code is not None or view.error_text:
        why = f"ascp error {view.error_code}: {view.error_text or 'no text'}"
        if view.reason and view.reason != view.error_text:
            why += f" ({view.reason})"
    first = view.source_paths[0] if view.source_paths else ""
    label = job_label(
        view.id, view.source_node, first, view.destination_node, view.destination_path
    )
    return f"{label} {view.state.replace('_', ' ')}: {why}"


SHORTEST_PREFIX = 8  # characters of a job id that may stand for it, if only one job has them


class AmbiguousJobId(JobRejected):
    """A short job id that more than one job starts with."""


def _hex_range(head: str) -> tuple[str, str] | None:
    """Bounds that every id starting with ``head`` (lowercase hex, as ids begin) sorts within,
    in any collation, so that the primary key's index finds a prefix (LIKE alone cannot use it
    outside the C collation); None for anything else."""
    if not head or any(c not in "0123456789abcdef" for c in head):
        return None
    last = head[-1]
    return head, head[:-1] + ("a" if last == "9" else chr(ord(last) + 1))


def resolve_job_id(ctx: ServiceContext, given: str) -> str:
    """The full id of the one job whose id is ``given`` or starts with it (8+ characters)."""
    with ctx.sessions() as session:
        if session.get(JobRow, given) is not None:
            return given
        if len(given) < SHORTEST_PREFIX:
            raise JobNotFound(
                f"no job {given} (a short id needs at least {SHORTEST_PREFIX} characters)"
            )
        query = select(JobRow.id).where(JobRow.id.startswith(given, autoescape=True))
        if bounds := _hex_range(given[:SHORTEST_PREFIX]):
            query = query.where(JobRow.id >= bounds[0], JobRow.id < bounds[1])
        found = session.scalars(query.limit(2)).all()
    if not found:
        raise JobNotFound(f"no job {given}")
    if len(found) > 1:
        raise AmbiguousJobId("job_id", f"{given} starts the ids of several jobs; give more of it")
    return found[0]
