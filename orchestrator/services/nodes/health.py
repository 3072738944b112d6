"""The slow round over every enabled node (ping and /info), so destinations have a health too.

An SSH endpoint has no Node API: its check is a TCP connect to its SSH port.

Each node is asked in its own thread and recorded as soon as it answers; a node that has not
answered by the round's deadline is recorded unreachable, so one slow node holds no one back.
A check only states reachability: it never changes a job.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from concurrent.futures import TimeoutError as FuturesTimeout

from sqlalchemy import select

from orchestrator.db.tables import NodeRow
from orchestrator.domain.sshendpoints import SSH
from orchestrator.errors import NodeError
from orchestrator.logsetup import redact
from orchestrator.services.context import ServiceContext
from orchestrator.services.nodes.checks import NodeCheck, ask, ask_ssh, record_check
from orchestrator.settings import Settings

log = logging.getLogger(__name__)

MAX_THREADS = 16  # nodes asked at once in one round


def round_deadline(settings: Settings) -> float:
    """Seconds a round waits for answers: half the cadence, at most two node calls."""
    calls = 2 * (settings.node_connect_timeout + settings.node_read_timeout)
    return min(settings.node_check_seconds / 2, calls)


def check_all(ctx: ServiceContext) -> str:
    """Check every enabled node and record each outcome; returns a one-line summary."""
    with ctx.sessions() as session:
        nodes = session.execute(
            select(NodeRow.id, NodeRow.name, NodeRow.kind, NodeRow.transfer_host, NodeRow.ssh_port)
            .where(NodeRow.enabled)
            .order_by(NodeRow.name)
        ).all()
    if not nodes:
        return "no enabled node to check"
    deadline = round_deadline(ctx.settings)
    pool = ThreadPoolExecutor(max_workers=min(MAX_THREADS, len(nodes)), thread_name_prefix="check")
    pending: dict[Future[NodeCheck], tuple[int, str]] = {}
    down: list[str] = []
    try:
        for node_id, name, kind, host, port in nodes:
            if kind == SSH:  # no Node API: whether its SSH port answers
                timeout = ctx.settings.node_connect_timeout
                pending[pool.submit(ask_ssh, name, host or "", port or 0, timeout)] = (
                    node_id,
                    name,
                )
                continue
            try:
                client = ctx.clients.get(node_id)
            except NodeError as exc:  # the registry entry cannot be used (its CA bundle)
                _record(ctx, node_id, NodeCheck(name=name, reachable=False, error=redact(str(exc))))
                down.append(name)
                continue
            pending[pool.submit(ask, client, name)] = (node_id, name)
        try:
            for future in as_completed(pending, timeout=deadline):
                node_id, name = pending.pop(future)
                check = _outcome(future, name)
                _record(ctx, node_id, check)
                if not check.reachable:
                    down.append(name)
        except FuturesTimeout:
            pass
        for node_id, name in pending.values():
            _record(ctx, node_id, NodeCheck(name, False, error=f"no answer within {deadline:g} s"))
            down.append(name)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # a hung call ends at its own timeout
    if down:
        return f"checked {len(nodes)} node(s); not reachable: {', '.join(sorted(down))}"
    return f"checked {len(nodes)} node(s); all reachable"


def _outcome(future: Future[NodeCheck], name: str) -> NodeCheck:
    try:
        return future.result()
    except Exception as exc:  # not the node's answer: a bug or a closed client
        log.warning("checking node %s failed: %s", name, type(exc).__name__, exc_info=True)
        return NodeCheck(name, False, error=f"the check itself failed ({type(exc).__name__})")


def _record(ctx: ServiceContext, node_id: int, check: NodeCheck) -> None:
    with ctx.sessions() as session:
        if session.get(NodeRow, node_id) is not None:  # not removed meanwhile
            record_check(session, node_id, check, ctx.now())
            session.commit()
