"""How fresh our view of each source node is: open transfers, the last good poll, the lag.

/metrics, the dashboard and the retention watchdog all read it here, so they agree.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orchestrator.db.tables import AttemptRow, JobRow, NodeCursorRow, NodeRow
from orchestrator.domain.nodes import NodePoll
from orchestrator.domain.states import MAY_HOLD_TRANSFER


def poll_status(session: Session, now: datetime) -> list[NodePoll]:
    """Per node: open transfers, the last good poll, and the poll lag at ``now``."""
    open_rows = session.execute(
        select(AttemptRow.source_node_id, func.count(), func.min(AttemptRow.created_at))
        .join(JobRow, JobRow.id == AttemptRow.job_id)
        .where(AttemptRow.ended_at.is_(None), JobRow.state.in_(MAY_HOLD_TRANSFER))
        .group_by(AttemptRow.source_node_id)
    ).all()
    following = {int(node): (int(n), oldest) for node, n, oldest in open_rows}
    result = []
    for node_id, name, retention, cursor in session.execute(
        select(NodeRow.id, NodeRow.name, NodeRow.activity_retention_seconds, NodeCursorRow)
        .outerjoin(NodeCursorRow, NodeCursorRow.node_id == NodeRow.id)
        .order_by(NodeRow.name)
    ):
        last_ok = cursor.last_success_at if cursor else None
        n, oldest = following.get(node_id, (0, None))
        lag = 0.0
        if n and oldest is not None:
            # Our view is as old as the last read of the feed, or as the oldest open
            # transfer if the feed was last read before it existed.
            seen = max(last_ok, _utc(oldest)) if last_ok else _utc(oldest)
            lag = max(0.0, (now - seen).total_seconds())
        failing = bool(cursor and cursor.last_error)
        result.append(NodePoll(node_id, name, retention, n, last_ok, failing, lag))
    return result


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
