"""Polling's own cost per transfer change: node feed pages replayed to the poller, no data plane.

N source nodes each run M open transfers (RUNNING jobs and their attempts are written straight
into the database). Each cycle, every node's feed page lists all its transfers with their bytes
moved on, as a node's change feed does while bytes flow; the pages have the shape hstssim and
the Node API give (`view=summary`, one session each) and reach the real NodeClient through an
httpx MockTransport, so parsing, matching, writing and planning the next poll are all counted.
``poll_node`` applies each node's page as a worker would. The last cycle ends every transfer.

Measured per cycle: this process's CPU and the database server's (the backends serving the
run's database, from /proc: other users of a shared server are left out), SQL statements, CPU
ms per transfer change applied, and whether one cycle's CPU fits in one poll interval on this
machine's cores. ``--compare-with REV`` runs the same replay on
another revision in the same run, side by side with the ratio.

    python benchmarks/feed_replay.py --nodes 200 --transfers 50 --database-url postgresql+psycopg://...
    python benchmarks/feed_replay.py --nodes 20 --transfers 50 --compare-with HEAD~3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import revisions
from cleardb import reset_schema
from conveyor_cost import cpu_seconds, postgres_pids

ROOT = Path(__file__).resolve().parent.parent
FIGURES = (
    ("changes", "transfer changes applied per cycle", "{:.0f}"),
    ("progress_cpu_ms_per_change", "CPU ms per change, progress cycles", "{:.3f}"),
    ("progress_statements_per_node", "SQL statements per node poll, progress", "{:.1f}"),
    ("progress_cycle_cpu_s", "CPU s per progress cycle (ours + db)", "{:.2f}"),
    ("progress_cycle_cores", "cores busy for a cycle every interval", "{:.2f}"),
    ("end_cpu_ms_per_change", "CPU ms per change, ending cycle", "{:.3f}"),
    ("end_our_cpu_ms_per_change", "  of which this process", "{:.3f}"),
    ("end_db_cpu_ms_per_change", "  of which the database server", "{:.3f}"),
    ("end_statements_per_change", "SQL statements per ended transfer", "{:.2f}"),
)
FILE_SIZE = 10 * 1000**3  # every transfer moves one 10 GB file: it stays open for every cycle


def transfer_json(
    remote_id: str, attempt_id: str, job_id: str, moved: int, started_usec: int, *, ended: bool
) -> dict[str, Any]:
    """One transfer as a node's summary view shows it (node-api.md §5; hstssim/views.py)."""
    status = "completed" if ended else "running"
    done = FILE_SIZE if ended else moved
    end_usec = started_usec + 60_000_000 if ended else 0
    return {
        "id": remote_id,
        "status": status,
        "start_spec": {
            "direction": "send",
            "endpoint": "client",
            "remote_host": "10.0.0.2",
            "remote_user": "xfer",
            "source_paths": ["/bench/big.bin"],
            "destination_path": "/in",
            "rate_policy": "fair",
            "target_rate_kbps": 1_000_000,
            "tags": {"orchestrator": {"attempt": attempt_id, "job": job_id}},
        },
        "sessions": [
            {
                "id": remote_id,
                "status": status,
                "start_time_usec": started_usec,
                "end_time_usec": end_usec,
                "bytes_transferred": done,
                "bytes_written": done,
                "files_completed": 1 if ended else 0,
                "avg_rate_kbps": 800_000.0,
                "error_code": 0,
                "error_desc": "",
                "precalc": {
                    "enabled": True,
                    "status": "ready",
                    "bytes_expected": FILE_SIZE,
                    "files_expected": 1,
                    "directories_expected": 0,
                },
            }
        ],
        "bytes_transferred": done,
        "bytes_written": done,
        "avg_rate_kbps": 800_000.0,
        "files_completed": 1 if ended else 0,
        "files_skipped": 0,
        "start_time_usec": started_usec,
        "end_time_usec": end_usec,
        "error_code": 0,
        "error_desc": "",
        "precalc": {"status": "ready", "bytes_expected": FILE_SIZE, "files_expected": 1},
    }


def measure(args: argparse.Namespace) -> dict[str, float]:
    """Write the open transfers, replay the cycles, and return the figures."""
    sys.path.insert(0, str(ROOT))
    import httpx
    from pydantic import SecretStr
    from sqlalchemy import event, insert, make_url

    from orchestrator.crypto import secret_box
    from orchestrator.db.engine import make_engine, make_session_factory
    from orchestrator.db.migrate import upgrade
    from orchestrator.db.tables import AttemptRow, JobRow
    from orchestrator.domain.nodes import NodeRegistration
    from orchestrator.nodeapi.client import NodeClient
    from orchestrator.services.context import ServiceContext
    from orchestrator.services.conveyor.polling import poll_node
    from orchestrator.services.nodes.registry import register_node
    from orchestrator.settings import Settings

    class ReplayNodes:
        """Clients whose node answers each feed request with the cycle's recorded page."""

        def __init__(self, box: Any) -> None:
            self.box = box
            self.pages: dict[int, list[dict[str, Any]]] = {}
            self.cycle = 0
            self._clients: dict[int, NodeClient] = {}

        def get(self, node_id: int) -> NodeClient:
            if node_id not in self._clients:

                def answer(request: httpx.Request, node_id: int = node_id) -> httpx.Response:
                    token = request.url.params.get("iteration_token")
                    fresh = f"c{self.cycle}"
                    page = [] if token == fresh else self.pages[node_id]
                    link = f'</ops/transfers?iteration_token={fresh}>; rel="next"'
                    return httpx.Response(200, json=page, headers={"Link": link})

                http = httpx.Client(
                    transport=httpx.MockTransport(answer), base_url=f"https://n{node_id}:9092"
                )
                self._clients[node_id] = NodeClient(http, node=f"replay-{node_id}")
            return self._clients[node_id]

        def close(self) -> None:
            for client in self._clients.values():
                client.close()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        url = args.database_url or f"sqlite:///{work / 'replay.db'}"
        engine = make_engine(url, pre_ping=False)  # as the workers' engine (no ping per checkout)
        if url.startswith("postgresql"):
            reset_schema(engine)  # the revision compared with may be older than the schema
        upgrade(engine)
        sessions = make_session_factory(engine)
        settings = Settings(data_dir=work / "data", database_url=url, node_api_metrics=False)
        nodes = ReplayNodes(secret_box(None, work / "data"))
        ctx = ServiceContext(sessions, nodes, settings)
        now = datetime.now(UTC)
        started_usec = int((now - timedelta(minutes=1)).timestamp() * 1e6)
        destination = register_node(ctx, _registration(NodeRegistration, SecretStr, "dest"))
        open_transfers: dict[int, list[tuple[str, str, str]]] = {}
        for index in range(args.nodes):
            node_id = register_node(ctx, _registration(NodeRegistration, SecretStr, f"s{index}"))
            jobs, attempts, ids = [], [], []
            for _ in range(args.transfers):
                job_id, attempt_id, remote_id = (str(uuid.uuid4()) for _ in range(3))
                jobs.append(
                    {
                        "id": job_id,
                        "source_node_id": node_id,
                        "source_paths": [{"source": "bench/big.bin"}],
                        "destination_node_id": destination,
                        "destination_path": "in",
                        "options": {},
                        "labels": {},
                        "state": "running",
                        "attempt_count": 1,
                        "bytes_expected": FILE_SIZE,
                        "files_expected": 1,
                        "created_at": now,
                        "updated_at": now,
                        "state_changed_at": now,
                    }
                )
                attempts.append(
                    {
                        "id": attempt_id,
                        "job_id": job_id,
                        "number": 1,
                        "source_node_id": node_id,
                        "remote_id": remote_id,
                        "status": "running",
                        "bytes_expected": FILE_SIZE,
                        "files_expected": 1,
                        "created_at": now,
                        "submitted_at": now,
                        "last_seen_at": now - timedelta(minutes=1),
                    }
                )
                ids.append((remote_id, attempt_id, job_id))
            with engine.begin() as conn:
                conn.execute(insert(JobRow), jobs)
                conn.execute(insert(AttemptRow), attempts)
            open_transfers[node_id] = ids

        statements = [0]
        event.listen(
            engine, "before_cursor_execute", lambda *_: statements.__setitem__(0, statements[0] + 1)
        )
        database = make_url(url).database if url.startswith("postgresql") else None

        def cycle(number: int, *, ended: bool) -> tuple[float, float, int]:
            """Every node's page for this cycle, polled; (our CPU s, database CPU s, statements)."""
            nodes.cycle = number
            for node_id, ids in open_transfers.items():
                moved = number * 10**8
                nodes.pages[node_id] = [
                    transfer_json(r, a, j, moved, started_usec, ended=ended) for r, a, j in ids
                ]
            pg = postgres_pids(database) if database else []
            db0 = {pid: cpu_seconds([pid]) for pid in pg}
            cpu0, sql0 = time.process_time(), statements[0]
            for node_id in open_transfers:
                poll_node(ctx, node_id, owner="replay")
            ours = time.process_time() - cpu0
            db = sum(  # a backend opened during the cycle counts whole
                cpu_seconds([pid]) - db0.get(pid, 0.0)
                for pid in (postgres_pids(database) if database else [])
            )
            return ours, db, statements[0] - sql0

        # Every cycle is a poll interval later (progress is written at most every
        # ORCH_PROGRESS_SECONDS per transfer): the injected clock moves on, not the wall clock.
        clock = [now]
        ctx.clock = lambda: clock[0]
        cycle(0, ended=False)  # warm-up: clients built, pages parsed once
        progress_cpu, progress_sql = 0.0, 0
        for number in range(1, args.cycles + 1):
            clock[0] = now + timedelta(seconds=settings.poll_interval * number)
            ours, db, sql = cycle(number, ended=False)
            progress_cpu += ours + db
            progress_sql += sql
        clock[0] += timedelta(seconds=settings.poll_interval)
        end_ours, end_db, end_sql = cycle(args.cycles + 1, ended=True)
        nodes.close()
        engine.dispose()
    changes = args.nodes * args.transfers
    per_cycle = progress_cpu / args.cycles
    return {
        "changes": changes,
        "progress_cpu_ms_per_change": 1000 * per_cycle / changes,
        "progress_statements_per_node": progress_sql / args.cycles / args.nodes,
        "progress_cycle_cpu_s": per_cycle,
        "progress_cycle_cores": per_cycle / settings.poll_interval,
        "end_cpu_ms_per_change": 1000 * (end_ours + end_db) / changes,
        "end_our_cpu_ms_per_change": 1000 * end_ours / changes,
        "end_db_cpu_ms_per_change": 1000 * end_db / changes,
        "end_statements_per_change": end_sql / changes,
    }


def _registration(registration: Any, secret: Any, name: str) -> Any:
    """A node registration for the replay (its URL is never dialled)."""
    return registration(
        name=name,
        base_url=f"https://{name}.replay:9092",
        username="node_user",
        secret=secret("replay"),
        max_outbound=1000,
        max_inbound=1000,
    )


def main() -> None:
    """Parse the options, measure (and the other revision), print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=200, help="source nodes")
    parser.add_argument("--transfers", type=int, default=50, help="open transfers per node")
    parser.add_argument("--cycles", type=int, default=3, help="progress cycles measured")
    parser.add_argument("--database-url", help="default: a SQLite file in a temp dir")
    revisions.add_options(parser)
    args, _ = parser.parse_known_args()
    global ROOT
    if args.root:
        ROOT = Path(args.root)
    ours, other = revisions.measure_sides(args, ROOT, __file__, lambda: measure(args))
    if args.json:
        print(json.dumps(ours))
        return
    revisions.print_side_by_side(FIGURES, ours, other, args.compare_with)
    where = "PostgreSQL" if (args.database_url or "").startswith("postgresql") else "SQLite"
    print(
        f"\n{args.nodes} source nodes x {args.transfers} open transfers, {where}, "
        f"{os.cpu_count()} cores; a cycle fits one poll interval when cores busy <= cores"
    )


if __name__ == "__main__":
    main()
