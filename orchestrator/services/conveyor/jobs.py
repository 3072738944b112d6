"""Creating a job: validated against the registry, committed QUEUED, then one wake-up."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from orchestrator.db.tables import JobRow, NodeRow
from orchestrator.domain.jobs import JobSpec, TransferMode
from orchestrator.domain.units import moment
from orchestrator.errors import OrchestratorError
from orchestrator.services.context import ServiceContext
from orchestrator.services.conveyor.creation import (
    JobRejected,
    KeyReused,
    Plan,
    Rows,
    first_events,
    plan_job,
    read_nodes,
)
from orchestrator.services.conveyor.deadlines import admission
from orchestrator.services.conveyor.sourcecheck import Verdict, check_sources
from orchestrator.taskqueue import TaskName

__all__ = ["JobRejected", "KeyReused"]  # defined with the rows they refuse; imported from here


class JobNotFound(OrchestratorError):
    """No job has that id."""


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


@dataclass(frozen=True)
class Refused:
    """A request of a batch that made no job, and why (JobRejected says the field)."""

    error: OrchestratorError

    @property
    def field(self) -> str | None:
        """The request field at fault, when one is."""
        return getattr(self.error, "field", None)


Outcome = Created | Refused


@dataclass(frozen=True)
class JobRequest:
    """One job to create, with its idempotency key or schedule slot.

    ``guard`` runs in the job's transaction once the job passed its checks (it may lock a
    row, check and change it, or raise to refuse); it must raise before it writes.
    """

    spec: JobSpec
    idempotency_key: str | None = None
    schedule_id: str | None = None
    slot_time: datetime | None = None
    guard: Callable[[Session], None] | None = None


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

    ``guard`` runs in the same transaction (it may lock a row, check and change it, or raise
    to refuse): the job and what the guard wrote commit together or not at all.
    """
    request = JobRequest(spec, idempotency_key, schedule_id, slot_time, guard)
    (outcome,) = create_jobs(ctx, [request], key_owner=key_owner)
    if isinstance(outcome, Refused):
        raise outcome.error
    return outcome


def create_jobs(
    ctx: ServiceContext, requests: Sequence[JobRequest], *, key_owner: KeyOwner | None = None
) -> list[Outcome]:
    """Create many jobs in one transaction (one INSERT per table, one wake-up); an outcome
    per request, in order: created, already known by its key, or refused with the reason.

    One refused request never holds the others back. Deadlines are admitted in order, each
    counting the batch's jobs before it on its link as the work ahead of it.
    """
    now = ctx.now()
    digests = [request_digest(r.spec) for r in requests]
    sized = _sized(ctx, requests)
    settled: dict[int, Outcome] = {}
    while True:
        todo = [i for i in range(len(requests)) if i not in settled]
        if not todo:
            return [settled[i] for i in range(len(requests))]
        try:
            settled.update(_create_once(ctx, requests, todo, digests, sized, key_owner, now))
        except IntegrityError:
            # A racing twin (same idempotency key or schedule slot) committed first.
            twins = _twins(ctx, requests, todo, digests, key_owner)
            if not twins:
                raise
            settled.update(twins)
        except DataError:
            if len(todo) == 1:
                raise
            # A value the database cannot store (a NUL on PostgreSQL): find it one by one.
            for i in todo:
                settled[i] = _alone(ctx, requests[i], key_owner)


def _alone(ctx: ServiceContext, request: JobRequest, owner: KeyOwner | None) -> Outcome:
    """One request of a batch in a transaction of its own."""
    try:
        (outcome,) = create_jobs(ctx, [request], key_owner=owner)
    except DataError:
        return Refused(
            JobRejected(
                "body", "a value cannot be stored (NUL or other characters the database refuses)"
            )
        )
    return outcome


def _create_once(
    ctx: ServiceContext,
    requests: Sequence[JobRequest],
    todo: list[int],
    digests: list[str],
    sized: dict[int, Verdict | None],
    owner: KeyOwner | None,
    now: datetime,
) -> dict[int, Outcome]:
    """One try at creating the ``todo`` requests in one transaction."""
    outcomes: dict[int, Outcome] = {}
    with ctx.unit_of_work() as work:
        session = work.session
        keys = {k for i in todo if (k := requests[i].idempotency_key) is not None}
        known = _jobs_by_keys(session, keys) if keys else {}
        named = {n for i in todo for n in _names(requests[i].spec)}
        nodes = read_nodes(session, named)
        rows = Rows()
        micro = 0
        for i in todo:
            request, digest = requests[i], digests[i]
            key = request.idempotency_key
            try:
                existing = known.get(key) if key is not None else None
                if existing is not None:
                    outcomes[i] = Created(_same_request(existing, digest, owner), created=False)
                    continue
                plan = plan_job(
                    request.spec,
                    nodes,
                    now,
                    first_micro=micro,
                    idempotency_key=key,
                    schedule_id=request.schedule_id,
                    slot_time=request.slot_time,
                    request_digest=digest,
                    created_by_token=owner.token_id if owner else None,
                )
                warnings: list[str] = []
                if request.spec.deadline is not None:
                    rows.write(session)  # the batch's jobs before it are work ahead of it
                    warnings = _admit_deadlines(session, plan, request.spec, sized.get(i), now)
                if request.guard is not None:
                    request.guard(session)
            except OrchestratorError as exc:
                outcomes[i] = Refused(exc)
                continue
            first_events(plan, request.spec, warnings, now)
            rows.add(plan)
            micro += 1 + len(plan.parts)
            job = JobRow(**plan.job)
            if key is not None:
                known[key] = job
            outcomes[i] = Created(job, created=True, warnings=tuple(warnings))
        if any(isinstance(o, Created) and o.created for o in outcomes.values()):
            rows.write(session)
            work.after_commit(
                TaskName.DISPATCH, lambda: ctx.enqueue(TaskName.DISPATCH, new_jobs=True)
            )
            work.commit()
    return outcomes


def _names(spec: JobSpec) -> set[str]:
    """The nodes a request names."""
    return {spec.source_node, *(t.node for t in spec.targets())}


def _jobs_by_keys(session: Session, keys: set[str]) -> dict[str, JobRow]:
    """The jobs created with these idempotency keys, by key."""
    found = session.scalars(select(JobRow).where(JobRow.idempotency_key.in_(keys)))
    return {job.idempotency_key: job for job in found if job.idempotency_key is not None}


def _twins(
    ctx: ServiceContext,
    requests: Sequence[JobRequest],
    todo: list[int],
    digests: list[str],
    owner: KeyOwner | None,
) -> dict[int, Outcome]:
    """The requests a racing create made first, with what each one's caller gets."""
    found: dict[int, Outcome] = {}
    with ctx.sessions() as session:
        for i in todo:
            r = requests[i]
            twin = _twin(session, r.idempotency_key, r.schedule_id, r.slot_time)
            if twin is None:
                continue
            try:
                found[i] = Created(_same_request(twin, digests[i], owner), created=False)
            except KeyReused as exc:
                found[i] = Refused(exc)
    return found


def _sized(ctx: ServiceContext, requests: Sequence[JobRequest]) -> dict[int, Verdict | None]:
    """Deadline jobs' own sizes, asked of their source nodes before the transaction (one
    /files/info per source node for the whole batch)."""
    wanted = {i: r.spec for i, r in enumerate(requests) if r.spec.deadline is not None}
    if not wanted:
        return {}
    with ctx.sessions() as session:
        names = {spec.source_node for spec in wanted.values()}
        nodes = {n.name: n for n in session.scalars(select(NodeRow).where(NodeRow.name.in_(names)))}
        session.expunge_all()
    probes = [
        (_probe(str(i), nodes[spec.source_node], spec), nodes[spec.source_node])
        for i, spec in wanted.items()
        if spec.source_node in nodes  # else refused below, with the field
    ]
    verdicts = check_sources(ctx, probes) if probes else {}
    return {i: verdicts.get(str(i)) for i in wanted}


def _probe(probe_id: str, node: NodeRow, spec: JobSpec) -> JobRow:
    """A job that does not exist yet, as the source check reads one."""
    return JobRow(
        id=probe_id,
        source_root=node.root_path,
        source_paths=[{"source": p} for p in spec.source_paths],
    )


def _admit_deadlines(
    session: Session, plan: Plan, spec: JobSpec, sized: Verdict | None, now: datetime
) -> list[str]:
    """Admit a planned job's deadline on each of its links (a fan-out's parent ends with its
    last part); the warnings to give, or JobRejected."""
    warnings: list[str] = []
    source = session.get_one(NodeRow, plan.source.id)
    rows = plan.parts or [plan.job]
    for row, (destination, _) in zip(rows, plan.places, strict=True):
        target = session.get_one(NodeRow, destination.id)
        warnings += _admit_deadline(session, row, spec, source, target, sized, now)
    if plan.parts:
        plan.job["deadline"] = spec.deadline
        plan.job["eta"] = max((p["eta"] for p in plan.parts if p["eta"] is not None), default=None)
        plan.job["at_risk"] = any(p["at_risk"] for p in plan.parts)
    return warnings


def _admit_deadline(
    session: Session,
    job: dict[str, Any],
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
        job["bytes_expected"], job["files_expected"] = own, sized.files_expected
    estimate = admission(
        session, source, destination, priority=spec.priority, deadline=deadline, own_bytes=own
    )
    warning = estimate.warning(now)
    feasible = estimate.feasible(now)
    if not feasible and spec.deadline_policy == "reject":
        raise JobRejected("deadline", f"{warning} (refused: deadline_policy is 'reject')")
    job["deadline"], job["eta"], job["at_risk"] = deadline, estimate.eta(now), not feasible
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


def get_job(session: Session, job_id: str) -> JobRow:
    """The job with this id."""
    job = session.get(JobRow, job_id)
    if job is None:
        raise JobNotFound(f"no job {job_id}")
    return job
