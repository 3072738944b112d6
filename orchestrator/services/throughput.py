"""Bytes and files moved per minute and node pair: noted while polling, written at commit."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, SessionTransaction

from orchestrator.db.tables import ThroughputMinuteRow

_PENDING = "throughput.pending"
Key = tuple[datetime, int, int]


def minute_of(at: datetime) -> datetime:
    """The start of the minute ``at`` falls in."""
    return at.replace(second=0, microsecond=0)


def note(
    session: Session, at: datetime, source_id: int, destination_id: int, nbytes: int, files: int
) -> None:
    """Count progress towards this session's next commit (negative deltas are ignored)."""
    if nbytes <= 0 and files <= 0:
        return
    pending: dict[str, Counter[Key]] = session.info.setdefault(
        _PENDING, {"bytes": Counter(), "files": Counter()}
    )
    key = (minute_of(at), source_id, destination_id)
    pending["bytes"][key] += max(0, nbytes)
    pending["files"][key] += max(0, files)


@event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    pending: dict[str, Counter[Key]] | None = session.info.pop(_PENDING, None)
    if not pending:
        return
    insert: Any = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    for key in sorted(pending["bytes"].keys() | pending["files"].keys()):
        minute, source_id, destination_id = key
        nbytes, files = pending["bytes"][key], pending["files"][key]
        statement = insert(ThroughputMinuteRow).values(
            minute=minute,
            source_node_id=source_id,
            destination_node_id=destination_id,
            bytes=nbytes,
            files=files,
        )
        session.execute(
            statement.on_conflict_do_update(
                index_elements=["minute", "source_node_id", "destination_node_id"],
                set_={
                    "bytes": ThroughputMinuteRow.bytes + nbytes,
                    "files": ThroughputMinuteRow.files + files,
                },
            )
        )


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, previous_transaction: SessionTransaction) -> None:
    if previous_transaction.parent is None:  # the whole transaction, not a savepoint
        session.info.pop(_PENDING, None)


@dataclass(frozen=True)
class Minute:
    """Bytes and files moved in one minute, all node pairs together."""

    minute: datetime
    bytes: int
    files: int


def per_minute(session: Session, since: datetime) -> list[Minute]:
    """Minutes since ``since`` that moved something, oldest first."""
    rows = session.execute(
        select(
            ThroughputMinuteRow.minute,
            func.sum(ThroughputMinuteRow.bytes),
            func.sum(ThroughputMinuteRow.files),
        )
        .where(ThroughputMinuteRow.minute >= minute_of(since))
        .group_by(ThroughputMinuteRow.minute)
        .order_by(ThroughputMinuteRow.minute)
    ).all()
    return [Minute(row[0], int(row[1] or 0), int(row[2] or 0)) for row in rows]


def totals_by_pair(session: Session) -> dict[tuple[int, int], tuple[int, int]]:
    """All bytes and files ever moved, per (source node id, destination node id)."""
    rows = session.execute(
        select(
            ThroughputMinuteRow.source_node_id,
            ThroughputMinuteRow.destination_node_id,
            func.sum(ThroughputMinuteRow.bytes),
            func.sum(ThroughputMinuteRow.files),
        ).group_by(ThroughputMinuteRow.source_node_id, ThroughputMinuteRow.destination_node_id)
    ).all()
    return {(r[0], r[1]): (int(r[2] or 0), int(r[3] or 0)) for r in rows}


def window_start(now: datetime, minutes: int = 60) -> datetime:
    """The start of the last ``minutes`` minutes."""
    return minute_of(now) - timedelta(minutes=minutes - 1)
