"""Bytes and files moved per minute and node pair: tallied while progress is applied, written
with the same commit (the unit of work writes its tally just before it commits)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy.orm import Session

from orchestrator.db.engine import upsert
from orchestrator.db.tables import ThroughputMinuteRow

Key = tuple[datetime, int, int]


def minute_of(at: datetime) -> datetime:
    """The start of the minute ``at`` falls in."""
    return at.replace(second=0, microsecond=0)


class ThroughputTally:
    """Progress counted during one unit of work, per (minute, source node, destination node)."""

    def __init__(self) -> None:
        self.bytes: Counter[Key] = Counter()
        self.files: Counter[Key] = Counter()

    def add(
        self, at: datetime, source_id: int, destination_id: int, nbytes: int, files: int
    ) -> None:
        """Count progress (negative deltas are ignored)."""
        if nbytes <= 0 and files <= 0:
            return
        key = (minute_of(at), source_id, destination_id)
        self.bytes[key] += max(0, nbytes)
        self.files[key] += max(0, files)

    def write(self, session: Session) -> None:
        """Add the tally to the per-minute rows (one upsert per key, in key order)."""
        insert = upsert(session)
        for key in sorted(self.bytes.keys() | self.files.keys()):
            minute, source_id, destination_id = key
            nbytes, files = self.bytes[key], self.files[key]
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
        self.bytes.clear()
        self.files.clear()
