"""Each node pair's measured rate: finished transfers' average rates folded into an EMA, written
with the commit of the poll that saw them end (one upsert per node pair)."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Float, Integer, bindparam
from sqlalchemy.orm import Session

from orchestrator.db.base import UtcDateTime
from orchestrator.db.engine import upsert
from orchestrator.db.tables import LinkRateRow
from orchestrator.domain.deadlines import fold_rates

Link = tuple[int, int]


class LinkRateTally:
    """Rates of transfers that ended during one unit of work, per (source, destination)."""

    def __init__(self) -> None:
        self.samples: dict[Link, list[float]] = {}
        self.at: datetime | None = None

    def add(self, at: datetime, source_id: int, destination_id: int, rate: float) -> None:
        """Count one finished transfer's average rate (bytes per second)."""
        self.samples.setdefault((source_id, destination_id), []).append(rate)
        self.at = at if self.at is None else max(self.at, at)

    def write(self, session: Session) -> None:
        """Fold each pair's samples into its row (node pairs in key order: one lock order)."""
        if not self.samples:
            return
        statement = _fold_statement(upsert(session))
        for (source_id, destination_id), samples in sorted(self.samples.items()):
            fold = fold_rates(samples)
            session.execute(
                statement,
                {
                    "source": source_id,
                    "destination": destination_id,
                    "first": fold.first,
                    "keep": fold.keep,
                    "add": fold.add,
                    "count": len(samples),
                    "at": self.at,
                },
            )
        self.samples.clear()
        self.at = None


@cache
def _fold_statement(insert: Any) -> Any:
    """The pair's upsert: a new row takes the first sample's fold, a row there folds them in;
    built once per dialect's ``insert`` (each pair binds its values)."""
    at = bindparam("at", type_=UtcDateTime())
    statement = insert(LinkRateRow).values(
        source_node_id=bindparam("source"),
        destination_node_id=bindparam("destination"),
        bytes_per_second=bindparam("first", type_=Float()),
        transfers=bindparam("count", type_=Integer()),
        updated_at=at,
    )
    return statement.on_conflict_do_update(
        index_elements=["source_node_id", "destination_node_id"],
        set_={
            "bytes_per_second": LinkRateRow.bytes_per_second * bindparam("keep", type_=Float())
            + bindparam("add", type_=Float()),
            "transfers": LinkRateRow.transfers + bindparam("count", type_=Integer()),
            "updated_at": at,
        },
    )


def link_rate(session: Session, source_id: int, destination_id: int) -> float | None:
    """The pair's measured bytes per second; None before its first measured transfer."""
    row = session.get(LinkRateRow, (source_id, destination_id))
    return None if row is None else row.bytes_per_second
