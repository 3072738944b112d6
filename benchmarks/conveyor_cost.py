"""Our own work per job: SQL statements, transactions and CPU from create to COMPLETED.

The services run in this process (no Celery: what it costs is measured elsewhere) against
hstssim nodes in a process of their own and a database (PostgreSQL with --database-url, else
SQLite). N jobs of one tiny file each are created, then dispatched, submitted and polled to
completion as fast as the services allow. create_job runs on an engine made as the API's
(pre-ping on checkout), the rest on one made as the workers' (no pre-ping). Counted:
statements and commits (SQLAlchemy engine events), this process's CPU, the database server's
CPU (the backends serving the run's database, from /proc: a shared server's other work is
left out), the simulator's CPU. ``--compare-with REV`` runs the
same measurement on another revision of the project (a temporary git worktree) in the same
run and prints both side by side with their ratio: the machines are noisy, ratios are the
figures to trust.

    python benchmarks/conveyor_cost.py --jobs 1000 --database-url postgresql+psycopg://...
    python benchmarks/conveyor_cost.py --jobs 1000 --compare-with d427d6d
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import revisions
from cleardb import clear_database, drop_newer_schema

ROOT = Path(__file__).resolve().parent.parent
FIGURES = (
    ("jobs", "jobs completed", "{:.0f}"),
    ("jobs_per_second", "jobs per second (in-process, no Celery)", "{:.1f}"),
    ("create_cpu_ms_per_job", "creation: CPU ms per job, caller", "{:.3f}"),
    ("create_db_cpu_ms_per_job", "creation: CPU ms per job, database server", "{:.3f}"),
    ("create_statements_per_job", "creation: SQL statements per job", "{:.2f}"),
    ("create_commits_per_job", "creation: transactions per job", "{:.2f}"),
    ("statements_per_job", "SQL statements per job", "{:.1f}"),
    ("commits_per_job", "transactions per job", "{:.1f}"),
    ("our_cpu_ms_per_job", "CPU ms per job, orchestrator", "{:.2f}"),
    ("db_cpu_ms_per_job", "CPU ms per job, database server", "{:.2f}"),
    ("sim_cpu_ms_per_job", "CPU ms per job, hstssim", "{:.2f}"),
    ("requests_per_job", "node API requests per job", "{:.2f}"),
)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes (and their reaped children), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return total / tick


def postgres_pids(database: str | None = None) -> list[int]:
    """Every process of the local PostgreSQL server (its backends do the work), or only the
    backends serving ``database`` (other users of a shared server are left out)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if not (entry / "comm").read_text().strip().startswith("postgres"):
                    continue
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if database is None or f" {database} " in title:  # "postgres: user db host ..."
                found.append(int(entry.name))
    return found


def measure(args: argparse.Namespace) -> dict[str, float]:
    """Run N jobs to completion in this process; the figures of the run."""
    sys.path.insert(0, str(ROOT))
    import httpx
    from pydantic import SecretStr
    from sqlalchemy import event, func, make_url, select

    from orchestrator.db.engine import make_engine, make_session_factory
    from orchestrator.db.migrate import upgrade
    from orchestrator.db.tables import JobRow
    from orchestrator.domain.jobs import JobSpec
    from orchestrator.domain.nodes import NodeRegistration
    from orchestrator.domain.states import JobState
    from orchestrator.services.context import ServiceContext
    from orchestrator.services.conveyor import jobs as creating
    from orchestrator.services.conveyor.dispatch import dispatch
    from orchestrator.services.conveyor.polling import poll_node
    from orchestrator.services.conveyor.submission import submit
    from orchestrator.services.nodes.clients import NodeClients
    from orchestrator.services.nodes.registry import register_node
    from orchestrator.settings import Settings
    from orchestrator.taskqueue import TaskName

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        url = args.database_url or f"sqlite:///{work / 'bench.db'}"
        engine = make_engine(url)  # the API's engine: create_job
        drop_newer_schema(engine)
        upgrade(engine)
        clear_database(engine)
        sessions = make_session_factory(engine)
        settings = Settings(
            data_dir=work / "data",
            database_url=url,
            max_per_link=args.concurrency,
            node_api_metrics=False,
        )
        sent: list[tuple[str, tuple[Any, ...]]] = []

        def enqueue(task: str, *task_args: Any, **_: Any) -> None:
            sent.append((task, task_args))

        from orchestrator.crypto import secret_box

        box = secret_box(None, work / "data")
        ctx = ServiceContext(sessions, NodeClients(sessions, box, settings), settings, enqueue)
        # The workers' engine, as bootstrap makes it for them: no pre-ping on checkout.
        worker_engine = make_engine(url, pre_ping=False)
        worker_sessions = make_session_factory(worker_engine)
        workers = ServiceContext(
            worker_sessions, NodeClients(worker_sessions, box, settings), settings, enqueue
        )
        with revisions.simulator(work / "nodes", 2 * args.pairs, ROOT) as (sim, nodes):
            node_ids = []
            for node in nodes:
                registration = NodeRegistration(
                    name=node["name"],
                    base_url=node["api_url"],
                    username=node["node_user"],
                    secret=SecretStr(node["node_password"]),
                    transfer_host=node["host"],
                    max_outbound=args.concurrency,
                    max_inbound=args.concurrency,
                )
                node_ids.append(register_node(ctx, registration))
                httpx.put(
                    node["api_url"] + "/admin/settings",
                    json={"max_concurrent_sessions": args.concurrency},
                    headers={"X-Admin-Token": node["admin_token"]},
                ).raise_for_status()
            sources = node_ids[0::2]
            for index in range(args.jobs):
                pair = index % args.pairs
                path = Path(nodes[2 * pair]["docroot"]) / "bench" / f"f{index:05d}.bin"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"x" * args.file_size)
            statements = [0]
            commits = [0]
            for counted in (engine, worker_engine):
                event.listen(
                    counted,
                    "before_cursor_execute",
                    lambda *_: statements.__setitem__(0, statements[0] + 1),
                )
                event.listen(counted, "commit", lambda *_: commits.__setitem__(0, commits[0] + 1))
            for warmed in (engine, worker_engine):  # their backends exist before counting
                with warmed.connect():
                    pass
            database = make_url(url).database if url.startswith("postgresql") else None
            pg = postgres_pids(database) if database else []
            db0 = {pid: cpu_seconds([pid]) for pid in pg}
            ours0, sim0 = time.process_time(), cpu_seconds([sim.pid])
            started = time.monotonic()
            specs = [
                JobSpec(
                    source_node=nodes[2 * (index % args.pairs)]["name"],
                    source_paths=[f"bench/f{index:05d}.bin"],
                    destination_node=nodes[2 * (index % args.pairs) + 1]["name"],
                    destination_path="in",
                )
                for index in range(args.jobs)
            ]
            made0 = (time.process_time(), statements[0], commits[0])
            batched = args.create == "batch" and hasattr(creating, "create_jobs")
            if batched:  # a revision without create_jobs creates one at a time
                for at in range(0, args.jobs, args.batch_size):
                    chunk = specs[at : at + args.batch_size]
                    creating.create_jobs(ctx, [creating.JobRequest(spec) for spec in chunk])
            else:
                for spec in specs:
                    creating.create_job(ctx, spec)
            made = (
                time.process_time() - made0[0],
                statements[0] - made0[1],
                commits[0] - made0[2],
                sum(
                    cpu_seconds([pid]) - db0.get(pid, 0.0)
                    for pid in (postgres_pids(database) if database else [])
                ),
            )
            done = 0
            deadline = time.monotonic() + args.timeout
            polled = 0.0
            while done < args.jobs and time.monotonic() < deadline:
                batch, sent[:] = list(sent), []
                dispatched = False
                for task, task_args in batch:
                    if task == TaskName.DISPATCH and not dispatched:
                        dispatched = True  # the wake-ups of one moment coalesce
                        dispatch(workers)
                    elif task == TaskName.SUBMIT:
                        submit(workers, *task_args)
                if time.monotonic() - polled >= args.poll_interval:
                    polled = time.monotonic()
                    for node_id in sources:
                        poll_node(workers, node_id, owner="bench")
                    dispatch(workers)  # as the sweeper would, for what polls freed
                    with worker_sessions() as session:
                        done = int(
                            session.scalar(
                                select(func.count())
                                .select_from(JobRow)
                                .where(JobRow.state == JobState.COMPLETED)
                            )
                            or 0
                        )
                elif not batch:
                    time.sleep(0.005)
            seconds = time.monotonic() - started
            ours, db, simcpu = (
                time.process_time() - ours0,
                sum(  # a backend opened during the run counts whole
                    cpu_seconds([pid]) - db0.get(pid, 0.0)
                    for pid in (postgres_pids(database) if database else [])
                ),
                cpu_seconds([sim.pid]) - sim0,
            )
            requests = 0
            for node in nodes:
                counters = httpx.get(
                    node["api_url"] + "/admin/counters",
                    headers={"X-Admin-Token": node["admin_token"]},
                ).json()
                requests += sum(counters["requests"].values())
        ctx.clients.close()
        workers.clients.close()
        engine.dispose()
        worker_engine.dispose()
    jobs = max(done, 1)
    return {
        "jobs": done,
        "jobs_per_second": done / seconds,
        "create_cpu_ms_per_job": 1000 * made[0] / args.jobs,
        "create_db_cpu_ms_per_job": 1000 * made[3] / args.jobs,
        "create_statements_per_job": made[1] / args.jobs,
        "create_commits_per_job": made[2] / args.jobs,
        "statements_per_job": statements[0] / jobs,
        "commits_per_job": commits[0] / jobs,
        "our_cpu_ms_per_job": 1000 * ours / jobs,
        "db_cpu_ms_per_job": 1000 * db / jobs,
        "sim_cpu_ms_per_job": 1000 * simcpu / jobs,
        "requests_per_job": requests / jobs,
    }


def main() -> None:
    """Parse the options, measure (and the other revision), print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=100, help="transfers per node")
    parser.add_argument("--file-size", type=int, default=1024)
    parser.add_argument("--poll-interval", type=float, default=0.5)
    parser.add_argument("--database-url", help="default: a SQLite file in a temp dir")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument(
        "--create",
        choices=("single", "batch"),
        default="single",
        help="create the jobs one at a time (create_job) or in batches (create_jobs)",
    )
    parser.add_argument("--batch-size", type=int, default=100, help="jobs per create_jobs")
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
    print(f"\n{args.jobs} jobs of {args.file_size} bytes, {args.pairs} node pairs, {where}")
    how = f"create_jobs, {args.batch_size} a batch" if args.create == "batch" else "create_job"
    print(f"created with {how} (a revision without create_jobs: create_job)")


if __name__ == "__main__":
    main()
