"""Schedules at scale: what one replication tick and one schedules list cost.

Builds a database (SQLite file, or --database-url) with N schedules, each with a history of
runs, then times, side by side in one run:
- a tick with no slot due (what beat pays every ORCH_REPLICATION_TICK_SECONDS),
- a tick where every schedule's slot is due (N jobs created, each slot claimed under a lock),
- the schedules list as the dashboard and GET /api/v1/schedules read it (runs of every
  schedule in one ranked query) against reading each schedule's runs on its own.
Prints one table.

    python benchmarks/schedules.py                   # 300 schedules, 30 runs each
    python benchmarks/schedules.py --schedules 1000 --database-url postgresql+psycopg://...
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import delete, event

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.crypto import secret_box  # noqa: E402
from orchestrator.db.base import Base  # noqa: E402
from orchestrator.db.engine import make_engine, make_session_factory  # noqa: E402
from orchestrator.db.migrate import upgrade  # noqa: E402
from orchestrator.db.tables import JobRow, ScheduleRow  # noqa: E402
from orchestrator.domain.nodes import NodeRegistration  # noqa: E402
from orchestrator.domain.schedules import ScheduleSpec  # noqa: E402
from orchestrator.services.context import ServiceContext, no_enqueue, utcnow  # noqa: E402
from orchestrator.services.nodes.clients import NodeClients  # noqa: E402
from orchestrator.services.nodes.registry import register_node  # noqa: E402
from orchestrator.services.schedules.runs import tick  # noqa: E402
from orchestrator.services.schedules.store import create_schedule  # noqa: E402
from orchestrator.services.views.schedules import list_schedule_views, schedule_view  # noqa: E402
from orchestrator.settings import Settings  # noqa: E402

START = datetime(2026, 11, 23, tzinfo=UTC)


def build(url: str, data_dir: Path, schedules: int, runs: int) -> ServiceContext:
    """A database with two nodes and ``schedules`` hourly schedules of ``runs`` past runs."""
    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(delete(table))
    sessions = make_session_factory(engine)
    settings = Settings(database_url=url, data_dir=data_dir)
    box = secret_box(None, data_dir)
    ctx = ServiceContext(sessions, NodeClients(sessions, box, settings), settings, no_enqueue)
    ctx.clock = lambda: START
    ids = []
    for name in ("node-a", "node-b"):
        registration = {
            "name": name,
            "base_url": "https://127.0.0.1:1",
            "auth_kind": "node_user",
            "username": "u",
            "secret": SecretStr("unused"),
        }
        ids.append(register_node(ctx, NodeRegistration.model_validate(registration)))
    with sessions() as session:
        for n in range(schedules):
            spec = ScheduleSpec(
                id=f"bench-{n:05d}",
                cron="0 * * * *",
                source_node="node-a",
                source_paths=[f"out/{n}"],
                destination_node="node-b",
                destination_path=f"in/{n}",
            )
            create_schedule(ctx, spec)
            for r in range(runs):
                slot = START - timedelta(hours=runs - r)
                session.add(_past_run(spec.id, slot, ids))
        session.commit()
    ctx.clock = utcnow
    return ctx


def _past_run(schedule_id: str, slot: datetime, node_ids: list[int]) -> JobRow:
    return JobRow(
        id=str(uuid.uuid4()),
        source_node_id=node_ids[0],
        source_paths=[{"source": "out"}],
        destination_node_id=node_ids[1],
        destination_path="/in",
        schedule_id=schedule_id,
        slot_time=slot,
        idempotency_key=f"schedule:{schedule_id}:{slot.isoformat()}",
        labels={"schedule": schedule_id, "trigger": "schedule"},
        state="completed",
        bytes_transferred=1000,
        files_completed=1,
        created_at=slot,
        updated_at=slot,
        state_changed_at=slot,
        finished_at=slot + timedelta(minutes=5),
    )


def timed(action: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median and best wall time of ``repeat`` runs, in milliseconds."""
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        action()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times), min(times)


class QueryCounter:
    """Counts the SQL statements an engine executes."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.count = 0
        bind = ctx.sessions.kw["bind"]
        event.listen(bind, "before_cursor_execute", self._seen)

    def _seen(self, *_: object) -> None:
        self.count += 1

    def during(self, action: Callable[[], object]) -> int:
        before = self.count
        action()
        return self.count - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=300)
    parser.add_argument("--runs", type=int, default=30, help="past runs per schedule")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        url = args.database_url or f"sqlite:///{work}/bench.db"
        ctx = build(url, Path(work), args.schedules, args.runs)
        counter = QueryCounter(ctx)
        now = START + timedelta(minutes=30)
        ctx.clock = lambda: now

        def per_schedule() -> None:
            with ctx.sessions() as session:
                for row in session.query(ScheduleRow).order_by(ScheduleRow.id):
                    schedule_view(session, row, now, history=5)

        def batched() -> None:
            with ctx.sessions() as session:
                list_schedule_views(session, now)

        rows = []
        idle_ms = timed(lambda: tick(ctx), args.repeat)
        rows.append(("tick, nothing due", idle_ms, counter.during(lambda: tick(ctx))))
        batched_ms = timed(batched, args.repeat)
        rows.append(("schedules list, batched", batched_ms, counter.during(batched)))
        single_ms = timed(per_schedule, args.repeat)
        rows.append(("schedules list, per schedule", single_ms, counter.during(per_schedule)))
        now = START + timedelta(hours=1, minutes=1)
        ctx.clock = lambda: now
        began = time.perf_counter()
        queries = counter.during(lambda: tick(ctx))
        due_ms = (time.perf_counter() - began) * 1000
        rows.append((f"tick, {args.schedules} slots due", (due_ms, due_ms), queries))
    backend = url.split(":", 1)[0]
    print(f"{args.schedules} schedules, {args.runs} past runs each, {backend}")
    print(f"{'what':<32}{'median ms':>11}{'best ms':>10}{'queries':>9}")
    for name, (median, best), queries in rows:
        print(f"{name:<32}{median:>11.1f}{best:>10.1f}{queries:>9}")
    print(f"per-schedule / batched list: {single_ms[0] / batched_ms[0]:.1f}x")


if __name__ == "__main__":
    main()
