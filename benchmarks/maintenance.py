"""A maintenance window on a busy node: nothing fails, everything resumes within a poll interval.

The services run in this process against two hstssim nodes and a SQLite database (or
--database-url); a beat thread does what beat and the workers do: poll the source (adaptive
polling by default), sweep, and run the maintenance tick twice per poll interval. Jobs copy
files from node-a to node-b at a fixed rate, more than node-b admits at once, so some run and
some queue. Once they run, a one-off window on node-b (the destination) is added to open
--lead seconds later, for --window seconds (the beat's tick, not the add, pauses). Measured:
- when the last running transfer was paused, against the window's start (the tick pauses up to
  one tick early), and the bytes node-b received while the window was open;
- how many jobs were admitted during the window (none should be);
- after the window: the delay from its end to each transfer's resume (the tick's event) and to
  the poller seeing it run again; the goal is one poll interval;
- the end: jobs failed, node transfers failed, node transfers started (one per job means no
  restart was needed), files byte-identical.
Prints one table.

    python benchmarks/maintenance.py                 # the figures in docs/benchmarks.md
    python benchmarks/maintenance.py --jobs 30 --window 10
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from hstssim.cluster import SimCluster  # noqa: E402
from orchestrator.db.tables import JobEventRow, JobRow  # noqa: E402
from orchestrator.domain.jobs import JobSpec  # noqa: E402
from orchestrator.domain.maintenance import MaintenanceSpec  # noqa: E402
from orchestrator.domain.states import SETTLED, JobState  # noqa: E402
from orchestrator.services.context import ServiceContext  # noqa: E402
from orchestrator.services.conveyor.jobs import create_job  # noqa: E402
from orchestrator.services.conveyor.maintenance import maintenance_tick  # noqa: E402
from orchestrator.services.conveyor.polling import (  # noqa: E402
    poll_node,
    send_due_polls,
    send_polls,
)
from orchestrator.services.conveyor.reconcile import sweep  # noqa: E402
from orchestrator.services.nodes.maintenance import add_window  # noqa: E402
from orchestrator.taskqueue import TaskName  # noqa: E402
from tests.support.sim import SimAdmin, fast_configs, read_tree, write_tree  # noqa: E402
from tests.support.stack import build_context, register_sim_node, run_tasks  # noqa: E402

RATE_KBPS = 800  # 100 KB/s per transfer


def events(ctx: ServiceContext, kind: str, text: str) -> dict[str, datetime]:
    """The first event of that kind whose message holds ``text``, per job."""
    found: dict[str, datetime] = {}
    with ctx.sessions() as session:
        rows = session.execute(
            select(JobEventRow.job_id, JobEventRow.at, JobEventRow.message, JobEventRow.to_state)
            .where(JobEventRow.kind == kind)
            .order_by(JobEventRow.id)
        ).all()
    for job_id, at, message, to_state in rows:
        if (text in message or text == to_state) and job_id not in found:
            found[job_id] = at
    return found


def run(
    url: str | None,
    jobs: int,
    seconds: float,
    window: float,
    lead: float,
    poll_interval: float,
    mode: str,
) -> list[tuple[str, str]]:
    """One window on a busy destination; the table's rows."""
    with tempfile.TemporaryDirectory() as tmp, SimCluster.start(fast_configs(Path(tmp))) as sims:
        a, b = sims["node-a"], sims["node-b"]
        ctx, tasks, engine = build_context(
            url or f"sqlite:///{tmp}/bench.db",
            Path(tmp) / "data",
            poll_interval=poll_interval,
            poll_mode=mode,
            unseen_check_seconds=300.0,
            lost_after_seconds=600.0,
        )
        admin_a, admin_b = SimAdmin(a), SimAdmin(b)
        register_sim_node(ctx, a, max_outbound=jobs)
        register_sim_node(ctx, b, max_inbound=max(1, jobs * 3 // 4))
        lock = threading.Lock()
        stop = threading.Event()

        def beat() -> None:
            # Beat's entries: the poll fan-out and the sweeper each interval, the maintenance
            # tick each half interval, adaptive polling's tick each half floor.
            tick = min(ctx.settings.poll_floor_seconds, poll_interval) / 2
            last = {"fanout": 0.0, "maintenance": 0.0}
            while not stop.wait(tick):
                with lock:
                    clock = time.monotonic()
                    if clock - last["maintenance"] >= poll_interval / 2:
                        last["maintenance"] = clock
                        maintenance_tick(ctx)
                    if clock - last["fanout"] >= poll_interval:
                        last["fanout"] = clock
                        send_polls(ctx)
                        sweep(ctx)
                    else:
                        send_due_polls(ctx)
                    for task, args in list(tasks.sent):
                        if task == TaskName.POLL:
                            tasks.sent.remove((task, args))
                            poll_node(ctx, int(args[0]), owner="bench")
                        elif task == TaskName.MAINTENANCE_TICK:
                            tasks.sent.remove((task, args))
                            maintenance_tick(ctx)
                    run_tasks(ctx, tasks)

        size = int(seconds * RATE_KBPS * 1000 / 8)
        sent: dict[str, bytes] = {}
        ids = []
        for i in range(jobs):
            folder = f"j{i:03d}"
            sent[folder] = os.urandom(size)
            write_tree(a.config.docroot, {f"{folder}/f.bin": sent[folder]})
            spec = JobSpec.model_validate(
                {
                    "source_node": "node-a",
                    "source_paths": [folder],
                    "destination_node": "node-b",
                    "destination_path": f"in/{folder}",
                    "options": {"target_rate_kbps": RATE_KBPS},
                }
            )
            ids.append(create_job(ctx, spec).job.id)
        poller = threading.Thread(target=beat, daemon=True)
        poller.start()
        try:
            with lock:
                run_tasks(ctx, tasks)
            time.sleep(seconds / 4)  # the transfers are well under way
            with ctx.sessions() as session:
                busy = len(
                    session.scalars(
                        select(JobRow.id).where(
                            JobRow.state.in_((JobState.SUBMITTED, JobState.RUNNING))
                        )
                    ).all()
                )
            assert busy, "no transfer runs yet"
            opened = datetime.now(UTC) + timedelta(seconds=lead)
            closes = opened + timedelta(seconds=window)
            spec = MaintenanceSpec(start=opened, end=closes, reason="benchmark")
            with lock:
                add_window(ctx, "node-b", spec)
            time.sleep(max(0.0, (opened - datetime.now(UTC)).total_seconds()))
            received_at_open = admin_b.counters()["bytes_received"]
            time.sleep(window / 2)
            received_mid = admin_b.counters()["bytes_received"]
            time.sleep(max(0.0, (closes - datetime.now(UTC)).total_seconds() - 0.05))
            received_at_close = admin_b.counters()["bytes_received"]
            deadline = time.monotonic() + 120 + jobs * seconds
            settled = {s.value for s in SETTLED}
            while time.monotonic() < deadline:
                with ctx.sessions() as session:
                    states = session.scalars(select(JobRow.state).where(JobRow.id.in_(ids))).all()
                if all(s in settled for s in states):
                    break
                time.sleep(0.1)
        finally:
            stop.set()
            poller.join()
        paused = events(ctx, "maintenance", "paused:")
        resumed = events(ctx, "maintenance", "resumed:")
        seen_running = {
            j: at
            for j, at in _runs_after(ctx, closes).items()
            if j in paused  # the poller saw it running again
        }
        admitted = [at for at in events(ctx, "state", "admitted").values() if opened <= at < closes]
        with ctx.sessions() as session:
            final = dict(session.execute(select(JobRow.id, JobRow.state)).all())
        node_transfers = admin_a.transfers()
        identical = read_tree(b.config.docroot / "in") == {
            f"{folder}/{folder}/f.bin": data for folder, data in sent.items()
        }
        resume_delays = [(at - closes).total_seconds() for at in resumed.values()]
        running_delays = [(at - closes).total_seconds() for at in seen_running.values()]
        pause_delays = [(at - opened).total_seconds() for at in paused.values()]
        admin_a.close()
        admin_b.close()
        ctx.clients.close()
        engine.dispose()
    return [
        ("jobs (running / queued at the window's start)", f"{jobs} ({busy} / {jobs - busy})"),
        ("paused by the tick", f"{len(paused)}"),
        ("last pause, from the window's start (s)", f"{max(pause_delays, default=0):+.2f}"),
        (
            "bytes node-b received, 2nd half of the window",
            f"{received_at_close - received_mid}",
        ),
        ("bytes node-b received, 1st half", f"{received_mid - received_at_open}"),
        ("jobs admitted during the window", f"{len(admitted)}"),
        ("resumed (tick) after the end, median / max (s)", _pair(resume_delays)),
        ("seen running by the poller, median / max (s)", _pair(running_delays)),
        (
            f"all resumed within one poll interval ({poll_interval:g} s)",
            "yes" if resume_delays and max(resume_delays) <= poll_interval else "NO",
        ),
        ("jobs completed / failed", _counts(final)),
        (
            "node transfers failed",
            f"{sum(1 for t in node_transfers if t['status'] == 'failed')}",
        ),
        ("node transfers started (one per job)", f"{len(node_transfers)}"),
        ("files byte-identical", "yes" if identical else "NO"),
    ]


def _runs_after(ctx: ServiceContext, moment: datetime) -> dict[str, datetime]:
    """When each job was first seen running again after ``moment``."""
    found: dict[str, datetime] = {}
    with ctx.sessions() as session:
        rows = session.execute(
            select(JobEventRow.job_id, JobEventRow.at)
            .where(
                JobEventRow.kind == "state",
                JobEventRow.from_state == JobState.PAUSED,
                JobEventRow.at >= moment,
            )
            .order_by(JobEventRow.id)
        ).all()
    for job_id, at in rows:
        found.setdefault(job_id, at)
    return found


def _pair(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.2f} / {max(values):.2f}"


def _counts(states: dict[str, str]) -> str:
    completed = sum(1 for s in states.values() if s == JobState.COMPLETED)
    failed = sum(1 for s in states.values() if s in (JobState.FAILED, JobState.NEEDS_ATTENTION))
    return f"{completed} / {failed}"


def main() -> None:
    """Parse the options, run, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=8.0, help="each transfer, unpaused")
    parser.add_argument("--window", type=float, default=8.0, help="the window's length")
    parser.add_argument("--lead", type=float, default=1.3, help="seconds from add to start")
    parser.add_argument("--poll-interval", type=float, default=2.0, help="seconds")
    parser.add_argument("--poll-mode", choices=("adaptive", "fixed"), default="adaptive")
    parser.add_argument("--database-url", default=None, help="default: a SQLite file")
    args = parser.parse_args()
    rows = run(
        args.database_url,
        args.jobs,
        args.seconds,
        args.window,
        args.lead,
        args.poll_interval,
        args.poll_mode,
    )
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:{width}}  {value:>14}")
    print(
        f"\n{args.jobs} jobs node-a -> node-b at {RATE_KBPS} kbps each, {args.seconds:g} s "
        f"unpaused; a {args.window:g} s window on node-b; {args.poll_mode} polling, interval "
        f"{args.poll_interval:g} s"
    )


if __name__ == "__main__":
    main()
