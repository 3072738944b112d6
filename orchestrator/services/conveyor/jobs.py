"""Creating a job: validated against the registry, committed QUEUED, then one wake-up."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orchestrator.db.tables import JobLabelRow, JobRow, NodeRow
from orchestrator.domain.jobs import JobSpec, TransferMode
from orchestrator.domain.paths import UnsafePath, confine
from orchestrator.domain.sshendpoints import SSH
from orchestrator.domain.states import JobState
from orchestrator.domain.units import moment
from orchestrator.errors import OrchestratorError
from orchestrator.services.context import ServiceContext
from orchestrator.services.conveyor.deadlines import admission, source_size
from orchestrator.services.conveyor.sourcecheck import Verdict
from orchestrator.services.events import record
from orchestrator.services.nodes.registry import not_registered
from orchestrator.taskqueue import TaskName


class JobNotFound(OrchestratorError):
    """No job has that id."""


class JobRejected(OrchestratorError):
    """The job cannot be accepted as asked (field says which part)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class KeyReused(JobRejected):
    """An idempotency key sent again with another request, or by another sender (409)."""


@dataclass(frozen=True)
class KeyOwner:
    """Who sent a caller's idempotency key: an API token's id, or None for a queue message.

    With an owner, the key stands for that sender's request: the same request returns the
    job it made; another request, or another sender, is refused (KeyReused), as payment APIs
    do. Schedules key their runs themselves and give no owner.
    """

    token_id: int | None


def request_digest(spec: JobSpec) -> str:
    """The SHA-256 of a job request as validated (so equivalent bodies match); a push without
    a deadline digests as it did before pull mode and deadlines existed."""
    fields = spec.model_dump(mode="json")
    if spec.mode is TransferMode.PUSH:
        fields.pop("mode")
    if spec.deadline is None:
        fields.pop("deadline")
        fields.pop("deadline_policy")
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _same_request(job: JobRow, digest: str, owner: KeyOwner | None) -> JobRow:
    """The job a key made, when this is the same request from the same sender."""
    if owner is None or job.request_digest is None:  # a schedule's key, or a job made before
        return job
    if job.created_by_token != owner.token_id:
        raise KeyReused("Idempotency-Key", "this key was already used by another sender")
    if job.request_digest != digest:
        raise KeyReused("Idempotency-Key", "this key was already used with different parameters")
    return job


@dataclass(frozen=True)
class Created:
    """The job, and whether this call created it (False: its idempotency key already had one)."""

    job: JobRow
    created: bool
    warnings: tuple[str, ...] = ()


def create_job(
    ctx: ServiceContext,
    spec: JobSpec,
    *,
    idempotency_key: str | None = None,
    schedule_id: str | None = None,
    slot_time: datetime | None = None,
    guard: Callable[[Session], None] | None = None,
    key_owner: KeyOwner | None = None,
) -> Created:
    """Commit the job QUEUED, then wake the dispatcher; a known key returns the existing job
    (``key_owner``: only for the same request from the same sender, else KeyReused).

    ``guard`` runs first in the same transaction (it may lock a row, check and change it, or
    raise to refuse): the job and what the guard wrote commit together or not at all.
    """
    now = ctx.now()
    digest = request_digest(spec)
    sized = _sized(ctx, spec) if spec.deadline is not None else None
    warnings: list[str] = []
    with ctx.unit_of_work() as work:
        session = work.session
        if guard is not None:
            guard(session)
        if idempotency_key is not None:
            existing = job_by_key(session, idempotency_key)
            if existing is not None:
                return Created(_same_request(existing, digest, key_owner), created=False)
        named = {spec.source_node, spec.destination_node}
        nodes = {n.name: n for n in session.scalars(select(NodeRow).where(NodeRow.name.in_(named)))}
        source = _node(nodes, "source_node", spec.source_node)
        destination = _node(nodes, "destination_node", spec.destination_node)
        if source.id == destination.id:
            raise JobRejected("destination_node", "source and destination must be two nodes")
        if source.kind == SSH:
            raise JobRejected(
                "source_node",
                f"node {source.name!r} is an SSH endpoint: it can only be a destination "
                "(it has no Node API to start a transfer on)",
            )
        if destination.kind == SSH and spec.mode is TransferMode.PULL:
            raise JobRejected(
                "mode",
                f"node {destination.name!r} is an SSH endpoint: it cannot run a pull "
                "(it has no Node API); push to it instead",
            )
        try:
            for path in spec.source_paths:
                confine(source.root_path, path)
            destination_path = confine(destination.root_path, spec.destination_path)
        except UnsafePath as exc:
            raise JobRejected("source_paths", str(exc)) from None
        try:
            spec.options.move_target(source.root_path)
        except UnsafePath as exc:
            raise JobRejected("options.move_after_transfer", str(exc)) from None
        job = JobRow(
            id=str(uuid.uuid4()),
            source_node_id=source.id,
            source_root=source.root_path,
            source_paths=[{"source": p} for p in spec.source_paths],
            source_paths_text="\n".join(spec.source_paths),
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
            request_digest=digest,
            created_by_token=key_owner.token_id if key_owner else None,
            mode=spec.mode,
        )
        if spec.deadline is not None:
            warnings = _admit_deadline(session, job, spec, source, destination, sized, now)
        session.add(job)
        try:
            # A racing twin (same idempotency key or schedule slot) fails here or at commit.
            session.flush()  # the job row before its first event and labels (foreign keys)
            session.add_all(
                JobLabelRow(job_id=job.id, key=key, value=value)
                for key, value in spec.labels.items()
            )
            record(
                session,
                job.id,
                "state",
                f"queued: {len(spec.source_paths)} path(s) from {source.name} "
                f"to {destination.name}:{destination_path}"
                + (f", pulled by {destination.name}" if spec.mode is TransferMode.PULL else ""),
                at=now,
                to_state=JobState.QUEUED,
            )
            for warning in warnings:
                record(session, job.id, "deadline", warning, at=now)
            work.after_commit(TaskName.DISPATCH, lambda: ctx.enqueue(TaskName.DISPATCH))
            work.commit()
        except IntegrityError:
            work.rollback()
            existing = _twin(session, idempotency_key, schedule_id, slot_time)
            if existing is not None:
                return Created(_same_request(existing, digest, key_owner), created=False)
            raise
    return Created(job, created=True, warnings=tuple(warnings))


def _sized(ctx: ServiceContext, spec: JobSpec) -> Verdict | None:
    """A deadline job's own size, asked of its source node before the transaction."""
    with ctx.sessions() as session:
        node = session.scalar(select(NodeRow).where(NodeRow.name == spec.source_node))
        if node is None:
            return None  # refused below, with the field
        session.expunge(node)
    return source_size(ctx, node, list(spec.source_paths))


def _admit_deadline(
    session: Session,
    job: JobRow,
    spec: JobSpec,
    source: NodeRow,
    destination: NodeRow,
    sized: Verdict | None,
    now: datetime,
) -> list[str]:
    """Set the job's deadline and first ETA; the warnings to give, or JobRejected when the
    deadline is past, or cannot be met and the caller asked to reject such a job."""
    deadline = spec.deadline
    assert deadline is not None
    if deadline <= now:
        raise JobRejected(
            "deadline", f"{moment(deadline)} is not in the future (it is {moment(now)})"
        )
    own = sized.bytes_expected if sized is not None and not sized.missing else None
    if own is not None and sized is not None:
        job.bytes_expected, job.files_expected = own, sized.files_expected
    estimate = admission(
        session, source, destination, priority=spec.priority, deadline=deadline, own_bytes=own
    )
    warning = estimate.warning(now)
    feasible = estimate.feasible(now)
    if not feasible and spec.deadline_policy == "reject":
        raise JobRejected("deadline", f"{warning} (refused: deadline_policy is 'reject')")
    job.deadline, job.eta, job.at_risk = deadline, estimate.eta(now), not feasible
    return [warning] if warning else []


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


def _node(nodes: dict[str, NodeRow], field: str, name: str) -> NodeRow:
    """The named node of the ones read, or the field's refusal."""
    if name not in nodes:
        raise JobRejected(field, str(not_registered(name)))
    return nodes[name]


def get_job(session: Session, job_id: str) -> JobRow:
    """The job with this id."""
    job = session.get(JobRow, job_id)
    if job is None:
        raise JobNotFound(f"no job {job_id}")
    return job
