"""Bytes and files moved per minute and node pair, as the dashboard and /metrics read them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orchestrator.db.tables import ThroughputMinuteRow
from orchestrator.services.conveyor.throughput import minute_of


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
