"""The replications file (config/replications.yaml): its schedules, reconciled into the database."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orchestrator.db.tables import ScheduleRow
from orchestrator.domain.schedules import ScheduleSpec
from orchestrator.errors import ConfigError
from orchestrator.services.context import ServiceContext
from orchestrator.services.schedules.store import (
    ScheduleRejected,
    all_schedules,
    insert_row,
    update_row,
)

log = logging.getLogger(__name__)
MANAGED = "config"


class ReplicationsFileError(ConfigError):
    """The replications file cannot be read or is not valid."""


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schedules: list[ScheduleSpec] = Field(default_factory=list)


def load_file(path: Path) -> list[ScheduleSpec]:
    """The schedules of a replications file; the error names the file, entry and field."""
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ReplicationsFileError(f"{path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ReplicationsFileError(f"{path}: not YAML ({exc})") from None
    try:
        parsed = _File.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ReplicationsFileError(f"{path}: {where}: {first['msg']}") from None
    ids = [s.id for s in parsed.schedules]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise ReplicationsFileError(f"{path}: schedule id(s) given twice: {', '.join(twice)}")
    return parsed.schedules


@dataclass
class Reconciled:
    """What applying a replications file changed."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        parts = [
            f"{len(getattr(self, name))} {name}"
            for name in ("added", "changed", "removed", "unchanged")
        ]
        text = "schedules from file: " + ", ".join(parts)
        return text + "".join(f"\n  {e}" for e in self.errors)


def reconcile(
    ctx: ServiceContext, specs: list[ScheduleSpec], channels: set[str] | None = None
) -> Reconciled:
    """Make the file's schedules exist as written; drop file schedules no longer in it.

    Schedules made through the API or CLI stay untouched unless the file names their id
    (the file then owns them). Racing starts (two beats) converge: a lost insert is retried.
    """
    for tries_left in (1, 0):
        try:
            return _reconcile_once(ctx, specs, channels)
        except IntegrityError:
            if not tries_left:
                raise
    raise AssertionError("unreachable")


def _reconcile_once(
    ctx: ServiceContext, specs: list[ScheduleSpec], channels: set[str] | None
) -> Reconciled:
    now = ctx.now()
    result = Reconciled()
    wanted = {spec.id: spec for spec in specs}
    with ctx.sessions() as session:
        existing = {row.id: row for row in all_schedules(session)}
        for spec in specs:
            row = existing.get(spec.id)
            try:
                with session.begin_nested():
                    if row is None:
                        insert_row(session, spec, now=now, managed_by=MANAGED, channels=channels)
                        result.added.append(spec.id)
                    elif _update(session, row, spec, now, channels):
                        result.changed.append(spec.id)
                    else:
                        result.unchanged.append(spec.id)
            except ScheduleRejected as exc:
                result.errors.append(f"schedule {spec.id}: {exc}")
        for schedule_id, row in existing.items():
            if row.managed_by == MANAGED and schedule_id not in wanted:
                session.delete(row)
                result.removed.append(schedule_id)
        session.commit()
    for error in result.errors:
        log.error("replications file: %s", error)
    return result


def _update(
    session: Session,
    row: ScheduleRow,
    spec: ScheduleSpec,
    now: datetime,
    channels: set[str] | None,
) -> bool:
    changed = update_row(session, row, spec, now=now, channels=channels)
    if row.managed_by != MANAGED:
        log.warning("replications file: schedule %s made elsewhere is now the file's", row.id)
        row.managed_by = MANAGED
        changed = True
    return changed


def apply_file(ctx: ServiceContext, path: Path, channels: set[str] | None = None) -> Reconciled:
    """Load and reconcile a replications file."""
    return reconcile(ctx, load_file(path), channels)


def apply_at_start(ctx: ServiceContext, channels: set[str] | None = None) -> Reconciled | None:
    """Apply ORCH_REPLICATIONS_FILE if it exists (beat and ``up`` call this when they start)."""
    path = ctx.settings.replications_file
    if path is None or not path.is_file():
        return None
    result = apply_file(ctx, path, channels)
    log.info("%s: %s", path, result)
    return result
