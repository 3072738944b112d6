"""Creating jobs (DB first, then a wake-up) and reading them back."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orchestrator.db.tables import AttemptRow, JobEventRow, JobRow, NodeRow
from orchestrator.domain.jobs import JobSpec
from orchestrator.domain.paths import UnsafePath, confine
from orchestrator.domain.states import JobState
from orchestrator.domain.transfers import eta_seconds
from orchestrator.errors import OrchestratorError
from orchestrator.services.context import ServiceContext
from orchestrator.services.journal import record
from orchestrator.services.registry import NodeNotRegistered, node_named
from orchestrator.taskqueue import TaskName


class JobNotFound(OrchestratorError):
    """No job has that id."""


class JobRejected(OrchestratorError):
    """The job cannot be accepted as asked (field says which part)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class Created:
    """The job, and whether this call created it (False: its idempotency key already had one)."""

    job: JobRow
    created: bool


def create_job(
    ctx: ServiceContext,
    spec: JobSpec,
    *,
    idempotency_key: str | None = None,
    schedule_id: str | None = None,
    slot_time: datetime | None = None,
    guard: Callable[[Session], None] | None = None,
) -> Created:
    """Commit the job QUEUED, then wake the dispatcher; a known key returns the existing job.

    ``guard`` runs first in the same transaction (it may lock a row, check and change it, or
    raise to refuse): the job and what the guard wrote commit together or not at all.
    """
    now = ctx.now()
    with ctx.sessions() as session:
        if guard is not None:
            guard(session)
        if idempotency_key is not None:
            existing = job_by_key(session, idempotency_key)
            if existing is not None:
                return Created(existing, created=False)
        source = _node(session, "source_node", spec.source_node)
        destination = _node(session, "destination_node", spec.destination_node)
        if source.id == destination.id:
            raise JobRejected("destination_node", "source and destination must be two nodes")
        try:
            for path in spec.source_paths:
                confine(source.root_path, path)
            destination_path = confine(destination.root_path, spec.destination_path)
        except UnsafePath as exc:
            raise JobRejected("source_paths", str(exc)) from None
        job = JobRow(
            id=str(uuid.uuid4()),
            source_node_id=source.id,
            source_root=source.root_path,
            source_paths=[{"source": p} for p in spec.source_paths],
            destination_node_id=destination.id,
            destination_path=destination_path,
            options=spec.options.model_dump(exclude_defaults=True),
            priority=spec.priority,
            max_attempts=spec.max_attempts,
            labels=spec.labels,
            idempotency_key=idempotency_key,
            schedule_id=schedule_id,
            slot_time=slot_time,
            state=JobState.QUEUED,
            created_at=now,
            updated_at=now,
            state_changed_at=now,
        )
        session.add(job)
        try:
            # A racing twin (same idempotency key or schedule slot) fails here or at commit.
            session.flush()  # the job row before its first event (foreign key)
            record(
                session,
                job.id,
                "state",
                f"queued: {len(spec.source_paths)} path(s) from {source.name} "
                f"to {destination.name}:{destination_path}",
                at=now,
                to_state=JobState.QUEUED,
            )
            session.commit()
        except IntegrityError:
            session.rollback()
            existing = _twin(session, idempotency_key, schedule_id, slot_time)
            if existing is not None:
                return Created(existing, created=False)
            raise
    ctx.enqueue(TaskName.DISPATCH)
    return Created(job, created=True)


def _twin(
    session: Session, key: str | None, schedule_id: str | None, slot_time: datetime | None
) -> JobRow | None:
    """The job a racing create made first: same idempotency key, or same schedule slot."""
    if key is not None and (found := job_by_key(session, key)) is not None:
        return found
    if schedule_id is None or slot_time is None:
        return None
    return session.scalar(
        select(JobRow).where(JobRow.schedule_id == schedule_id, JobRow.slot_time == slot_time)
    )


RESERVED_KEY_PREFIXES = ("schedule:", "run:")


def check_caller_key(key: str | None) -> None:
    """Refuse a caller's idempotency key in the namespace the schedules use for their runs."""
    if key is not None and key.startswith(RESERVED_KEY_PREFIXES):
        raise JobRejected(
            "Idempotency-Key", "keys starting with 'schedule:' or 'run:' are reserved"
        )


def job_by_key(session: Session, key: str) -> JobRow | None:
    """The job created with this idempotency key, if any."""
    return session.scalar(select(JobRow).where(JobRow.idempotency_key == key))


def _node(session: Session, field: str, name: str) -> NodeRow:
    try:
        return node_named(session, name)
    except NodeNotRegistered as exc:
        raise JobRejected(field, str(exc)) from None


def get_job(session: Session, job_id: str) -> JobRow:
    """The job with this id."""
    job = session.get(JobRow, job_id)
    if job is None:
        raise JobNotFound(f"no job {job_id}")
    return job


def attempts_of(session: Session, job_id: str) -> list[AttemptRow]:
    """A job's attempts, oldest first."""
    return list(
        session.scalars(
            select(AttemptRow).where(AttemptRow.job_id == job_id).order_by(AttemptRow.number)
        )
    )


def events_of(session: Session, job_id: str) -> list[JobEventRow]:
    """A job's event log, oldest first."""
    return list(
        session.scalars(
            select(JobEventRow).where(JobEventRow.job_id == job_id).order_by(JobEventRow.id)
        )
    )


@dataclass(frozen=True)
class JobFilter:
    """What a job list may be narrowed to."""

    states: tuple[str, ...] = ()
    node: str | None = None
    schedule_id: str | None = None
    label: tuple[str, str] | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


def list_jobs(
    session: Session, where: JobFilter, *, limit: int = 50, cursor: str | None = None
) -> tuple[list[JobRow], str | None]:
    """Jobs newest first, and the cursor of the next page (None on the last page)."""
    query = select(JobRow)
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
    if cursor:
        created, job_id = _decode_cursor(cursor)
        query = query.where(
            (JobRow.created_at < created) | ((JobRow.created_at == created) & (JobRow.id < job_id))
        )
    query = query.order_by(JobRow.created_at.desc(), JobRow.id.desc())
    rows: list[JobRow] = []
    batch = 4 * limit if where.label else limit + 1
    offset = 0
    while len(rows) <= limit:
        page = list(session.scalars(query.limit(batch).offset(offset)))
        if where.label:
            key, value = where.label
            page_rows = [r for r in page if (r.labels or {}).get(key) == value]
        else:
            page_rows = page
        rows.extend(page_rows)
        if len(page) < batch:
            break
        offset += batch
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
        raise JobRejected("cursor", "not a cursor this API returned") from None


@dataclass
class JobView:
    """A job with its nodes' names and derived figures, as readers want it."""

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
    attempts: int
    max_attempts: int
    bytes_transferred: int
    bytes_expected: int | None
    files_completed: int
    files_expected: int | None
    rate_kbps: float | None
    eta_seconds: float | None
    waiting_reason: str | None
    reason: str | None
    error_code: int | None
    error_text: str | None
    cancel_requested: bool
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    attempt_list: list[AttemptRow]
    events: list[JobEventRow]


def job_view(session: Session, job: JobRow, *, detail: bool = False) -> JobView:
    """The reader's view of a job (attempts and events only with ``detail``)."""
    rows = session.execute(
        select(NodeRow.id, NodeRow.name).where(
            NodeRow.id.in_((job.source_node_id, job.destination_node_id))
        )
    ).all()
    names = {row[0]: row[1] for row in rows}
    eta = None
    if job.state == JobState.RUNNING:
        left = eta_seconds(job.bytes_transferred, job.bytes_expected, job.rate_kbps)
        eta = None if left is None else round(left, 1)
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
        rate_kbps=job.rate_kbps,
        eta_seconds=eta,
        waiting_reason=job.waiting_reason if job.state == JobState.QUEUED else None,
        reason=job.reason,
        error_code=job.error_code,
        error_text=job.error_text,
        cancel_requested=job.cancel_requested,
        created_at=job.created_at,
        updated_at=job.updated_at,
        finished_at=job.finished_at,
        attempt_list=attempts_of(session, job.id) if detail else [],
        events=events_of(session, job.id) if detail else [],
    )
