"""Other clients' work on our nodes: how many transfers each node runs that we did not start.

Asked only of the nodes that would run a queued job (the source of a push, the destination of
a pull), with one ``GET /ops/transfers?active_only=true&view=summary`` from the start of the
feed (node-api.md §4.1): every transfer the node lists as waiting or running that lacks our
tag (``orchestrator.attempt``) is another client's. The summary view is needed for the tag
(``view=id`` gives ids only, and an id we have not yet recorded would count as foreign).
Dispatch counts them against the node's session limit (services/conveyor/dispatch.py), so
what runs next follows our priorities rather than the node's first-come queue.

The reference is silent on whether ``active_only=true`` lists ``paused`` and
``partially_completed`` transfers (§11 item 9); we count what the node lists.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, case, select

from orchestrator.db.engine import upsert
from orchestrator.db.tables import JobRow, NodeLoadRow, NodeRow
from orchestrator.domain.jobs import TransferMode
from orchestrator.domain.sshendpoints import SSH
from orchestrator.domain.states import JobState
from orchestrator.domain.transfers import TAG_KEY
from orchestrator.errors import NodeError
from orchestrator.logsetup import redact
from orchestrator.services.context import ServiceContext

log = logging.getLogger(__name__)

PAGE = 1000  # transfers per page of the count
STALE_COUNTS = 3  # a count older than this many intervals is not used


@dataclass
class LoadSummary:
    """Per node asked: its name and what it runs for others (None: it could not say)."""

    others: dict[str, int | None] = field(default_factory=dict)
    changed: bool = False  # some node's count differs from the one dispatch used before

    def __str__(self) -> str:
        if not self.others:
            return "no node runs a queued job"
        return "other clients' transfers: " + ", ".join(
            f"{name} {'?' if n is None else n}" for name, n in sorted(self.others.items())
        )


def runner_node_id() -> ColumnElement[int]:
    """The column of the node that runs a job's transfer: the source, or for a pull the
    destination."""
    return case(
        (JobRow.mode == TransferMode.PULL.value, JobRow.destination_node_id),
        else_=JobRow.source_node_id,
    )


def count_node_load(ctx: ServiceContext) -> LoadSummary:
    """Ask each node that would run a queued job what it runs for others, and keep the counts."""
    summary = LoadSummary()
    if ctx.settings.node_load_seconds <= 0:
        return summary
    runner = runner_node_id()
    with ctx.sessions() as session:
        nodes = session.execute(
            select(NodeRow.id, NodeRow.name)
            .where(
                NodeRow.enabled,
                NodeRow.kind != SSH,
                NodeRow.id.in_(select(runner).where(JobRow.state == JobState.QUEUED)),
            )
            .order_by(NodeRow.id)
        ).all()
        before = {
            row.node_id: row.others
            for row in session.scalars(
                select(NodeLoadRow).where(NodeLoadRow.node_id.in_([n.id for n in nodes]))
            )
        }
    for node_id, name in nodes:
        others, ours, error = _ask(ctx, node_id)
        summary.others[name] = others
        summary.changed |= before.get(node_id, -1) != others
        with ctx.sessions() as session:
            if session.get(NodeRow, node_id) is None:  # removed meanwhile
                continue
            values = {"others": others, "ours": ours, "counted_at": ctx.now(), "error": error}
            session.execute(
                upsert(session)(NodeLoadRow)
                .values(node_id=node_id, **values)
                .on_conflict_do_update(index_elements=["node_id"], set_=values)
            )
            session.commit()
        if error:
            log.warning("counting node %s's transfers: %s", name, error, extra={"node": name})
    return summary


def _ask(ctx: ServiceContext, node_id: int) -> tuple[int | None, int | None, str | None]:
    """(others, ours, error) from the node's list of active transfers."""
    try:
        client = ctx.clients.get(node_id)
        active = client.list_transfers(None, active_only=True, view="summary", count=PAGE)
    except NodeError as exc:
        return None, None, redact(str(exc))[:2000]
    ours = sum(1 for t in active.transfers if t.tag(TAG_KEY))
    return len(active.transfers) - ours, ours, None


def fresh_loads(ctx: ServiceContext, rows: list[NodeLoadRow], now: datetime) -> dict[int, int]:
    """Other clients' transfers per node, from counts recent enough to act on."""
    every = ctx.settings.node_load_seconds
    if every <= 0:
        return {}
    oldest = now - timedelta(seconds=STALE_COUNTS * every)
    return {
        row.node_id: row.others
        for row in rows
        if row.others is not None and row.counted_at >= oldest
    }
