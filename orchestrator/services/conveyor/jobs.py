"""Creating a job: validated against the registry, committed QUEUED, then one wake-up."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

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
    """The SHA-256 of a job request as validated (so equivalent bodies match); a push to one
    destination without a deadline digests as it did before pull mode, fan-out and deadlines."""
    fields = spec.model_dump(mode="json")
    if spec.mode is TransferMode.PUSH:
        fields.pop("mode")
    if spec.deadline is None:
        fields.pop("deadline")
        fields.pop("deadline_policy")
    if fields["destinations"] is None:
        del fields["destinations"]
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
        targets = spec.targets()
        named = {spec.source_node, *(t.node for t in targets)}
        nodes = {n.name: n for n in session.scalars(select(NodeRow).where(NodeRow.name.in_(named)))}
        source = _node(nodes, "source_node", spec.source_node)
        if source.kind == SSH:
            raise JobRejected(
                "source_node",
                f"node {source.name!r} is an SSH endpoint: it can only be a destination "
                "(it has no Node API to start a transfer on)",
            )
        fields = _destination_fields(spec)
        places: list[tuple[NodeRow, str]] = []
        for (node_field, path_field), target in zip(fields, targets, strict=True):
            destination = _node(nodes, node_field, target.node)
            if source.id == destination.id:
                raise JobRejected(node_field, "source and destination must be two nodes")
            if destination.kind == SSH and spec.mode is TransferMode.PULL:
                raise JobRejected(
                    "mode",
                    f"node {destination.name!r} is an SSH endpoint: it cannot run a pull "
                    "(it has no Node API); push to it instead",
                )
            try:
                places.append((destination, confine(destination.root_path, target.path)))
            except UnsafePath as exc:
                raise JobRejected(path_field, str(exc)) from None
        try:
            for path in spec.source_paths:
                confine(source.root_path, path)
        except UnsafePath as exc:
            raise JobRejected("source_paths", str(exc)) from None
        try:
            spec.options.move_target(source.root_path)
        except UnsafePath as exc:
            raise JobRejected("options.move_after_transfer", str(exc)) from None
        fanout = spec.destinations is not None

        def new_row(destination: NodeRow, destination_path: str, **extra: Any) -> JobRow:
            return JobRow(
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
                created_at=now,
                updated_at=now,
                state_changed_at=now,
                mode=spec.mode,
                **extra,
            )

        job = new_row(
            *places[0],
            idempotency_key=idempotency_key,
            schedule_id=schedule_id,
            slot_time=slot_time,
            # A fan-out's parent is never dispatched: it runs while its parts do.
            state=JobState.RUNNING if fanout else JobState.QUEUED,
            is_parent=fanout,
            request_digest=digest,
            created_by_token=key_owner.token_id if key_owner else None,
        )
        parts = [new_row(*place, state=JobState.QUEUED) for place in places] if fanout else []
        if spec.deadline is not None:
            for row, (destination, _) in zip(parts or [job], places, strict=True):
                warnings += _admit_deadline(session, row, spec, source, destination, sized, now)
            if parts:  # the parent ends with its last part
                job.deadline = spec.deadline
                job.eta = max((p.eta for p in parts if p.eta is not None), default=None)
                job.at_risk = any(p.at_risk for p in parts)
        session.add(job)
        try:
            # A racing twin (same idempotency key or schedule slot) fails here or at commit.
            session.flush()  # the job row before its first event and labels (foreign keys)
            session.add_all(
                JobLabelRow(job_id=job.id, key=key, value=value)
                for key, value in spec.labels.items()
            )
            where = ", ".join(f"{node.name}:{path}" for node, path in places)
            pulled_by = ", ".join(node.name for node, _ in places)
            record(
                session,
                job.id,
                "state",
                f"{'fan-out' if fanout else 'queued'}: {len(spec.source_paths)} path(s) "
                f"from {source.name} to {where}"
                + (f", pulled by {pulled_by}" if spec.mode is TransferMode.PULL else ""),
                at=now,
                to_state=JobState(job.state),
            )
            for warning in warnings:
                record(session, job.id, "deadline", warning, at=now)
            if fanout:
                _add_parts(session, job, parts, now)
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


def _add_parts(session: Session, parent: JobRow, parts: list[JobRow], now: datetime) -> None:
    """A fan-out's parts, one ordinary job per destination, each with its own attempts."""
    for number, part in enumerate(parts, start=1):
        part.parent_id = parent.id
        # Apart by a microsecond, so that created_at orders them as the destinations were given.
        part.created_at = part.created_at + timedelta(microseconds=number)
        session.add(part)
    session.flush()
    for part in parts:
        record(
            session,
            part.id,
            "state",
            f"queued: destination of fan-out job {parent.id[:8]}",
            at=now,
            to_state=JobState.QUEUED,
        )


def _destination_fields(spec: JobSpec) -> list[tuple[str, str]]:
    """The request fields that name each destination (what a refusal points at)."""
    if spec.destinations is None:
        return [("destination_node", "destination_path")]
    return [
        (f"destinations.{i}.node", f"destinations.{i}.path") for i in range(len(spec.destinations))
    ]


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
