"""Other clients' work on our nodes: how many transfers each node runs that we did not start.

Asked only of the nodes that would run a queued job (the source of a push, the destination of
a pull), with one ``GET /ops/transfers?active_only=true&view=summary`` from the start of the
feed (node-api.md §4.1): every transfer the node lists as waiting or running that lacks our
tag (``orchestrator.attempt``) is another client's. The summary view is needed for the tag
(``view=id`` gives ids only, and an id we have not yet recorded would count as foreign).
Dispatch counts them against the node's session limit (services/conveyor/dispatch.py), so
what runs next follows our priorities rather than the node's first-come queue.

A node whose counts keep finding no other client is asked less often (domain/admission.py
``count_spacing``), so a fleet used by us alone pays few of these requests.

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
from orchestrator.domain.admission import count_is_due, count_usable_for
from orchestrator.domain.jobs import TransferMode
from orchestrator.domain.sshendpoints import SSH
from orchestrator.domain.states import JobState
from orchestrator.domain.transfers import TAG_KEY
from orchestrator.errors import NodeError
from orchestrator.logsetup import redact
from orchestrator.services.context import ServiceContext

log = logging.getLogger(__name__)

PAGE = 1000  # transfers per page of the count


@dataclass
class LoadSummary:
    """Per node asked: its name and what it runs for others (None: it could not say)."""

    others: dict[str, int | None] = field(default_factory=dict)
    changed: bool = False  # some node's count differs from the one dispatch used before
    quiet: int = 0  # nodes not asked this round: their recent counts found no other client

    def __str__(self) -> str:
        if not self.others and not self.quiet:
            return "no node runs a queued job"
        counted = ", ".join(
            f"{name} {'?' if n is None else n}" for name, n in sorted(self.others.items())
        )
        line = f"other clients' transfers: {counted or 'no node due'}"
        return line + (f" ({self.quiet} quiet nodes not asked)" if self.quiet else "")


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
    every = ctx.settings.node_load_seconds
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
            row.node_id: (row.others, row.quiet, row.counted_at)
            for row in session.scalars(
                select(NodeLoadRow).where(NodeLoadRow.node_id.in_([n.id for n in nodes]))
            )
        }
    now = ctx.now()
    for node_id, name in nodes:
        last, quiet, counted_at = before.get(node_id, (None, 0, None))
        since = (now - counted_at).total_seconds() if counted_at else None
        recent = since is not None and since <= count_usable_for(every, quiet)
        if recent and quiet and not count_is_due(since or 0.0, every, quiet):
            summary.quiet += 1
            continue
        others, ours, error = _ask(ctx, node_id)
        summary.others[name] = others
        summary.changed |= last != others or counted_at is None
        quiet = ((quiet if recent else 0) + 1) if others == 0 else 0
        with ctx.sessions() as session:
            if session.get(NodeRow, node_id) is None:  # removed meanwhile
                continue
            values = {
                "others": others,
                "ours": ours,
                "quiet": quiet,
                "counted_at": ctx.now(),
                "error": error,
            }
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
    return {
        row.node_id: row.others
        for row in rows
        if row.others is not None
        and row.counted_at >= now - timedelta(seconds=count_usable_for(every, row.quiet))
    }
