"""Replication schedules in the database: create, change, enable, delete, read back as specs.

The ``*_schedule`` functions are services (they open their session and commit); the
``*_row`` steps work inside a caller's transaction (the replications file applies many).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orchestrator.db.tables import NodeRow, ScheduleRow
from orchestrator.domain.jobs import TransferMode
from orchestrator.domain.schedules import ScheduleSpec
from orchestrator.domain.sshendpoints import SSH
from orchestrator.errors import ConfigError, OrchestratorError
from orchestrator.services.alerts.rules import known_channels
from orchestrator.services.context import ServiceContext
from orchestrator.services.nodes.clients import NodeNotRegistered
from orchestrator.services.nodes.registry import node_named, node_names


class ScheduleNotFound(OrchestratorError):
    """No schedule has that id."""


class ScheduleRejected(OrchestratorError):
    """The schedule cannot be saved as given (``field`` says which part)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class ScheduleExists(ConfigError):
    """A schedule with that id exists already."""


class ScheduleManagedElsewhere(ConfigError):
    """The replications file owns this schedule."""


def editable(row: ScheduleRow) -> ScheduleRow:
    """The row, if the API may change it (the replications file owns its own schedules)."""
    if row.managed_by == "config":
        raise ScheduleManagedElsewhere(
            f"schedule {row.id!r} comes from the replications file (ORCH_REPLICATIONS_FILE); "
            "change it there"
        )
    return row


def get_schedule(session: Session, schedule_id: str) -> ScheduleRow:
    """The schedule with this id."""
    row = session.get(ScheduleRow, schedule_id)
    if row is None:
        raise ScheduleNotFound(f"no schedule {schedule_id!r}")
    return row


def all_schedules(session: Session) -> list[ScheduleRow]:
    """Every schedule, by id."""
    return list(session.scalars(select(ScheduleRow).order_by(ScheduleRow.id)))


def spec_of(
    session: Session, row: ScheduleRow, names: dict[int, str] | None = None
) -> ScheduleSpec:
    """The spec a schedule row was saved from (``names``: node names, when already read)."""
    names = names if names is not None else node_names(session)
    return ScheduleSpec.model_validate(
        {
            "id": row.id,
            "description": row.description,
            "cron": row.cron,
            "interval_seconds": row.interval_seconds,
            "timezone": row.timezone,
            "source_node": names[row.source_node_id],
            "source_paths": row.source_paths,
            **_where_to(row, names),
            "options": row.options,
            "priority": row.priority,
            "max_attempts": row.max_attempts,
            "overlap": row.overlap,
            "enabled": row.enabled,
            "alerts": row.alerts or {},
            "labels": row.labels or {},
            "mode": row.mode,
            "deadline_after": row.deadline_after_seconds,
        }
    )


def _where_to(row: ScheduleRow, names: dict[int, str]) -> dict[str, Any]:
    """A schedule row's destination fields: its one destination, or a fan-out's list."""
    if not row.destinations:
        return {
            "destination_node": names[row.destination_node_id],
            "destination_path": row.destination_path,
        }
    return {
        "destinations": [{"node": names[d["node_id"]], "path": d["path"]} for d in row.destinations]
    }


def create_schedule(ctx: ServiceContext, spec: ScheduleSpec) -> None:
    """Save a schedule made through the API or CLI; its first slot is the first after now."""
    with ctx.sessions() as session:
        insert_row(session, spec, now=ctx.now(), channels=known_channels(ctx.settings))
        session.commit()


def change_schedule(ctx: ServiceContext, schedule_id: str, patch: dict[str, Any]) -> None:
    """Change some fields of a schedule; a cron replaces an interval and the other way round,
    and so do a list of destinations and the single destination's fields."""
    with ctx.sessions() as session:
        row = editable(get_schedule(session, schedule_id))
        merged = spec_of(session, row).model_dump()
        if "cron" in patch and "interval_seconds" not in patch:
            merged["interval_seconds"] = None
        if "interval_seconds" in patch and "cron" not in patch:
            merged["cron"] = None
        single = {"destination_node", "destination_path"}
        if "destinations" in patch and not single & patch.keys():
            merged.update(destination_node=None, destination_path=None)
        if single & patch.keys() and "destinations" not in patch:
            merged["destinations"] = None
        spec = ScheduleSpec.model_validate({**merged, **patch})
        update_row(session, row, spec, now=ctx.now(), channels=known_channels(ctx.settings))
        session.commit()


def set_enabled(ctx: ServiceContext, schedule_id: str, enabled: bool) -> None:
    """Turn a schedule on or off; turning it on skips the slots it missed."""
    now = ctx.now()
    with ctx.sessions() as session:
        row = get_schedule(session, schedule_id)
        if enabled and not row.enabled:
            row.done_until = max(row.done_until, now)
            row.last_error = None
        row.enabled = enabled
        row.updated_at = now
        session.commit()


def delete_schedule(ctx: ServiceContext, schedule_id: str) -> None:
    """Remove a schedule the API may change; its past runs stay, linked by id."""
    with ctx.sessions() as session:
        session.delete(editable(get_schedule(session, schedule_id)))
        session.commit()


def insert_row(
    session: Session,
    spec: ScheduleSpec,
    *,
    now: datetime,
    managed_by: str = "api",
    channels: set[str] | None = None,
) -> ScheduleRow:
    """Add a schedule in the caller's transaction; its first slot is the first after ``now``."""
    if session.get(ScheduleRow, spec.id) is not None:
        raise ScheduleExists(f"schedule {spec.id!r} exists; change it with PATCH or pick an id")
    row = ScheduleRow(
        id=spec.id,
        managed_by=managed_by,
        done_until=now,
        skipped_slots=0,
        created_at=now,
        updated_at=now,
    )
    _fill(session, row, spec, channels)
    session.add(row)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:  # a racing create with the same id got there first
        raise ScheduleExists(
            f"schedule {spec.id!r} exists; change it with PATCH or pick an id"
        ) from None
    return row


def update_row(
    session: Session,
    row: ScheduleRow,
    spec: ScheduleSpec,
    *,
    now: datetime,
    channels: set[str] | None = None,
) -> bool:
    """Change a schedule to ``spec`` in the caller's transaction; True when anything changed.

    A new timing, or enabling a disabled schedule, starts counting slots from now: the slots
    of the old timing, or of the time it was off, do not run.
    """
    before = spec_of(session, row)
    if before == spec:
        return False
    if before.timing() != spec.timing() or (spec.enabled and not before.enabled):
        row.done_until = max(row.done_until, now)
        row.last_error = None
    _fill(session, row, spec, channels)
    row.updated_at = now
    session.flush()
    return True


def _fill(
    session: Session, row: ScheduleRow, spec: ScheduleSpec, channels: set[str] | None
) -> None:
    source = _node(session, "source_node", spec.source_node)
    if source.kind == SSH:
        raise ScheduleRejected(
            "source_node", f"node {source.name!r} is an SSH endpoint: it can only be a destination"
        )
    row.source_node_id = source.id
    fanout = spec.destinations is not None
    places: list[dict[str, Any]] = []
    for i, target in enumerate(spec.targets()):
        field = f"destinations.{i}.node" if fanout else "destination_node"
        destination = _node(session, field, target.node)
        if destination.id == row.source_node_id:
            raise ScheduleRejected(field, "source and destination must be two nodes")
        if destination.kind == SSH and spec.mode is TransferMode.PULL:
            raise ScheduleRejected(
                "mode", f"node {destination.name!r} is an SSH endpoint: it cannot run a pull"
            )
        places.append({"node_id": destination.id, "path": target.path})
    # The first destination in the row's own columns (lists, dry runs); all of them, for a
    # fan-out, in ``destinations``.
    row.destination_node_id = places[0]["node_id"]
    row.destinations = places if fanout else None
    if channels is not None:
        unknown = sorted(set(spec.alerts.channels) - channels)
        if unknown:
            raise ScheduleRejected(
                "alerts.channels",
                f"no alert channel named {', '.join(unknown)}; the operator defines channels "
                "in the alerts file (ORCH_ALERTS_FILE)",
            )
    values: dict[str, Any] = {
        "description": spec.description,
        "source_paths": list(spec.source_paths),
        "destination_path": places[0]["path"],
        "cron": spec.cron,
        "interval_seconds": spec.interval_seconds,
        "timezone": spec.timezone,
        "options": spec.options.model_dump(exclude_defaults=True),
        "priority": spec.priority,
        "max_attempts": spec.max_attempts,
        "overlap": spec.overlap,
        "enabled": spec.enabled,
        "alerts": spec.alerts.model_dump(),
        "labels": dict(spec.labels),
        "mode": spec.mode.value,
        "deadline_after_seconds": spec.deadline_after,
    }
    for key, value in values.items():
        setattr(row, key, value)


def _node(session: Session, field: str, name: str) -> NodeRow:
    try:
        return node_named(session, name)
    except NodeNotRegistered as exc:
        raise ScheduleRejected(field, str(exc)) from None
