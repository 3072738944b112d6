"""A new job's rows: its checks against the registry, and the plain INSERTs that write them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from orchestrator.db.tables import JobEventRow, JobLabelRow, JobRow, NodeRow
from orchestrator.domain.jobs import JobSpec, TransferMode
from orchestrator.domain.paths import UnsafePath, confine
from orchestrator.domain.sshendpoints import SSH
from orchestrator.domain.states import JobState
from orchestrator.errors import OrchestratorError
from orchestrator.services.nodes.registry import not_registered


class JobRejected(OrchestratorError):
    """The job cannot be accepted as asked (field says which part)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class KeyReused(JobRejected):
    """An idempotency key sent again with another request, or by another sender (409)."""


@dataclass(frozen=True)
class NodeFacts:
    """What a new job needs of a registered node."""

    id: int
    name: str
    kind: str
    root_path: str


def read_nodes(session: Session, names: set[str]) -> dict[str, NodeFacts]:
    """The named nodes that are registered, by name (one plain SELECT)."""
    found = session.execute(
        select(NodeRow.id, NodeRow.name, NodeRow.kind, NodeRow.root_path).where(
            NodeRow.name.in_(names)
        )
    )
    return {row.name: NodeFacts(row.id, row.name, row.kind, row.root_path) for row in found}


@dataclass
class Plan:
    """One request's rows: the job (a fan-out's parent), its parts, labels and first events."""

    job: dict[str, Any]
    parts: list[dict[str, Any]]
    source: NodeFacts
    places: list[tuple[NodeFacts, str]]
    labels: list[dict[str, Any]]
    events: list[dict[str, Any]] = field(default_factory=list)


# Every column of a job row, with its default: the rows of one multi-row INSERT name the same
# columns, so what a row does not set is written as the ORM would have written it.
_JOB_DEFAULTS: dict[str, Any] = {
    c.key: getattr(c.default, "arg", None)
    if c.default is not None and c.default.is_scalar
    else None
    for c in cast(Table, JobRow.__table__).columns
}


def plan_job(
    spec: JobSpec,
    nodes: dict[str, NodeFacts],
    now: datetime,
    *,
    first_micro: int = 0,
    **own: Any,
) -> Plan:
    """The rows of a job as ``spec`` asks, or JobRejected with the field at fault.

    ``own`` are the job's (or fan-out parent's) own columns (idempotency key, schedule slot,
    digest, token); rows are created ``first_micro`` microseconds after ``now`` and on, so
    that created_at orders a batch's jobs as they were given.
    """
    targets = spec.targets()
    source = _node(nodes, "source_node", spec.source_node)
    if source.kind == SSH:
        raise JobRejected(
            "source_node",
            f"node {source.name!r} is an SSH endpoint: it can only be a destination "
            "(it has no Node API to start a transfer on)",
        )
    places: list[tuple[NodeFacts, str]] = []
    for (node_field, path_field), target in zip(_destination_fields(spec), targets, strict=True):
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
    common = {
        **_JOB_DEFAULTS,
        "source_node_id": source.id,
        "source_root": source.root_path,
        "source_paths": [{"source": p} for p in spec.source_paths],
        "source_paths_text": "\n".join(spec.source_paths),
        "options": spec.options.model_dump(exclude_defaults=True),
        "priority": spec.priority,
        "max_attempts": spec.max_attempts,
        "labels": spec.labels,
        "updated_at": now,
        "state_changed_at": now,
        "mode": spec.mode,
    }

    def row(number: int, place: tuple[NodeFacts, str], **extra: Any) -> dict[str, Any]:
        return {
            **common,
            "id": str(uuid.uuid4()),
            "destination_node_id": place[0].id,
            "destination_path": place[1],
            "created_at": now + timedelta(microseconds=first_micro + number),
            **extra,
        }

    # A fan-out's parent is never dispatched: it runs while its parts do.
    job = row(0, places[0], **own, state=JobState.RUNNING if fanout else JobState.QUEUED)
    job["is_parent"] = fanout
    parts = (
        [
            row(n, place, state=JobState.QUEUED, parent_id=job["id"])
            for n, place in enumerate(places, start=1)
        ]
        if fanout
        else []
    )
    labels = [{"job_id": job["id"], "key": k, "value": v} for k, v in spec.labels.items()]
    return Plan(job, parts, source, places, labels)


def first_events(plan: Plan, spec: JobSpec, warnings: list[str], now: datetime) -> None:
    """The job's first events (and its parts'), as one creation has always written them."""
    fanout = bool(plan.parts)
    where = ", ".join(f"{node.name}:{path}" for node, path in plan.places)
    pulled_by = ", ".join(node.name for node, _ in plan.places)
    said = (
        f"{'fan-out' if fanout else 'queued'}: {len(spec.source_paths)} path(s) "
        f"from {plan.source.name} to {where}"
        + (f", pulled by {pulled_by}" if spec.mode is TransferMode.PULL else "")
    )
    job_id = plan.job["id"]
    plan.events.append(event(job_id, "state", said, now, JobState(plan.job["state"])))
    plan.events.extend(event(job_id, "deadline", warning, now) for warning in warnings)
    plan.events.extend(
        event(
            part["id"],
            "state",
            f"queued: destination of fan-out job {job_id[:8]}",
            now,
            JobState.QUEUED,
        )
        for part in plan.parts
    )


def event(
    job_id: str, kind: str, message: str, at: datetime, to_state: JobState | None = None
) -> dict[str, Any]:
    """One event row's values (every column, so that rows share one INSERT)."""
    return {
        "job_id": job_id,
        "at": at,
        "kind": kind,
        "from_state": None,
        "to_state": to_state,
        "message": message,
        "data": {},
    }


@dataclass
class Rows:
    """New jobs' rows waiting to be written: one INSERT per table for all of them."""

    jobs: list[dict[str, Any]] = field(default_factory=list)
    labels: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def add(self, plan: Plan) -> None:
        """A planned job's rows, to write with the others."""
        self.jobs.append(plan.job)
        self.jobs.extend(plan.parts)
        self.labels.extend(plan.labels)
        self.events.extend(plan.events)

    def write(self, session: Session) -> None:
        """Write what waits, the jobs before what refers to them (foreign keys)."""
        for statement, rows in (
            (_JOBS, self.jobs),
            (_LABELS, self.labels),
            (_EVENTS, self.events),
        ):
            if rows:
                session.execute(statement, rows)
                rows.clear()


# Plain table INSERTs, built once: no ORM unit of work for rows that are never read back here.
_JOBS = insert(cast(Table, JobRow.__table__))
_LABELS = insert(cast(Table, JobLabelRow.__table__))
_EVENTS = insert(cast(Table, JobEventRow.__table__))


def _destination_fields(spec: JobSpec) -> list[tuple[str, str]]:
    """The request fields that name each destination (what a refusal points at)."""
    if spec.destinations is None:
        return [("destination_node", "destination_path")]
    return [
        (f"destinations.{i}.node", f"destinations.{i}.path") for i in range(len(spec.destinations))
    ]


def _node(nodes: dict[str, NodeFacts], field: str, name: str) -> NodeFacts:
    """The named node of the ones read, or the field's refusal."""
    if name not in nodes:
        raise JobRejected(field, str(not_registered(name)))
    return nodes[name]
