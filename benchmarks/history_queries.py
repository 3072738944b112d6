"""Reads over a long history: the dashboard, job lists and filters, one job, a short id and a
/metrics scrape, against PostgreSQL holding a million ended jobs.

The history is written once with INSERT … SELECT generate_series (jobs over 30 days: 90 %
completed, 6 % failed, 2 % canceled, 1 % flagged, 1 % of them labelled per team, a fifth from
schedules, one attempt and three events each) and kept for the next run (``--refill`` writes it
again). Each read runs ``--repeat`` times through the services, as the API calls them; the
table gives p50 and p95 in ms. ``--compare-with REV`` measures another revision of the project
on the same rows in the same run (its indexes as that revision's migrations leave them: the
indexes this tree adds are dropped for its turn and built again after), side by side, with the
ratio. ``--explain`` prints PostgreSQL's plan of each list query.

    python benchmarks/history_queries.py --jobs 1000000
    python benchmarks/history_queries.py --jobs 1000000 --compare-with 8e0cc27
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import revisions

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/hsts_bench"
NODES = ("hist-a", "hist-b", "hist-c", "hist-d")
TEAMS = 20
SCHEDULES = 10
GOAL_MS = 50.0
METRICS = "/metrics scrape"

FILL = """
INSERT INTO jobs (id, source_node_id, source_paths, destination_node_id, destination_path,
    options, priority, labels, state, attempt_count, max_attempts, cancel_requested,
    bytes_transferred, bytes_expected, files_completed, files_expected, created_at, updated_at,
    state_changed_at, finished_at, submit_failures, source_root, schedule_id, slot_time,
    error_code, error_text, reason)
SELECT md5('job' || i)::uuid::text,
    n.ids[1 + i % 2], json_build_array(json_build_object('source', 'data/set-' || i % 997)),
    n.ids[3 + i % 2], '/in/' || i % 31, '{}'::json, 0,
    CASE WHEN i % 100 = 7 THEN json_build_object('team', 't' || i % :teams) ELSE '{}'::json END,
    CASE WHEN i % 100 < 90 THEN 'completed' WHEN i % 100 < 96 THEN 'failed'
         WHEN i % 100 < 98 THEN 'canceled' WHEN i % 100 = 98 THEN 'needs_attention'
         ELSE 'completed' END,
    1, 3, false, 1048576, 1048576, 4, 4, t.at, t.at + interval '30 seconds',
    t.at + interval '30 seconds', t.at + interval '30 seconds', 0, '/',
    CASE WHEN i % 5 = 0 THEN 'sched-' || i % :schedules END,
    CASE WHEN i % 5 = 0 THEN t.at END,
    CASE WHEN i % 100 BETWEEN 90 AND 95 THEN 19 END,
    CASE WHEN i % 100 BETWEEN 90 AND 95 THEN 'Disk write failed (Error opening file)' END,
    CASE WHEN i % 100 = 98 THEN 'record expired on the node' END
FROM generate_series(1, :jobs) AS i,
    LATERAL (SELECT now() - interval '30 days' * (1 - i::float8 / :jobs) AS at) AS t,
    (SELECT array_agg(id ORDER BY name) AS ids FROM nodes WHERE name LIKE 'hist-%') AS n
"""
FILL_LABELS = """
INSERT INTO job_labels (job_id, key, value)
SELECT md5('job' || i)::uuid::text, 'team', 't' || i % :teams
FROM generate_series(1, :jobs) AS i WHERE i % 100 = 7
"""
FILL_ATTEMPTS = """
INSERT INTO attempts (id, job_id, number, source_node_id, remote_id, status,
    bytes_transferred, bytes_expected, files_completed, files_skipped, files_failed,
    files_expected, created_at, submitted_at, started_at, ended_at, last_seen_at,
    unsettled_checks)
SELECT md5('attempt' || j.id)::uuid::text, j.id, 1, j.source_node_id, 'r-' || j.id,
    CASE WHEN j.state = 'needs_attention' THEN 'lost' ELSE j.state END,
    j.bytes_transferred, j.bytes_expected, j.files_completed, 0, 0,
    j.files_expected, j.created_at, j.created_at, j.created_at, j.finished_at, j.finished_at, 0
FROM jobs AS j
"""
FILL_EVENTS = """
INSERT INTO job_events (job_id, at, kind, from_state, to_state, message, data)
SELECT j.id, j.created_at + interval '10 seconds' * s.k, 'state',
    (ARRAY[NULL, 'QUEUED', 'RUNNING'])[s.k + 1], (ARRAY['QUEUED', 'RUNNING', j.state])[s.k + 1],
    '', '{}'::json
FROM jobs AS j, generate_series(0, 2) AS s(k)
"""


def reachable(url: str) -> bool:
    """Whether the PostgreSQL server of ``url`` takes a connection."""
    sys.path.insert(0, str(ROOT))
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from orchestrator.db.engine import make_engine

    engine = make_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except OperationalError:
        return False
    finally:
        engine.dispose()


def populate(url: str, jobs: int, refill: bool) -> None:
    """Write the history unless the same number of jobs is there already."""
    sys.path.insert(0, str(ROOT))
    from sqlalchemy import text

    from orchestrator.db.engine import make_engine
    from orchestrator.db.migrate import upgrade

    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as conn:
        have = conn.scalar(text("SELECT count(*) FROM jobs"))
        if have == jobs and not refill:
            return
        print(f"writing {jobs:,} ended jobs (once; --refill writes them again)…", flush=True)
        started = time.monotonic()
        conn.execute(text("TRUNCATE job_events, job_labels, attempts, jobs, nodes CASCADE"))
        for name in NODES:
            conn.execute(
                text(
                    "INSERT INTO nodes (name, base_url, auth_kind, username, secret_encrypted,"
                    " insecure, root_path, max_outbound, max_inbound, enabled, created_at,"
                    " updated_at) VALUES (:name, :url,"
                    " 'node_user', 'nu', '\\x00', false, '/', 10, 10, true, now(), now())"
                ),
                {"name": name, "url": f"https://{name}.invalid:9092"},
            )
        values = {"jobs": jobs, "teams": TEAMS, "schedules": SCHEDULES}
        for statement in (FILL, FILL_LABELS, FILL_ATTEMPTS, FILL_EVENTS):
            conn.execute(text(statement), values)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()
    print(f"written in {time.monotonic() - started:.0f} s", flush=True)


def readers(url: str, engine: Any = None) -> list[tuple[str, Callable[[], object]]]:
    """The reads to time, each a call of the services the API makes (on ``engine`` if given)."""
    sys.path.insert(0, str(ROOT))
    from sqlalchemy import select

    from orchestrator.db.engine import make_engine, make_session_factory
    from orchestrator.db.tables import JobRow
    from orchestrator.services.context import ServiceContext
    from orchestrator.services.views.jobs import JobFilter, find_jobs, resolve_job_id, show_job
    from orchestrator.services.views.metrics.collector import scrape
    from orchestrator.services.views.overview import dashboard
    from orchestrator.settings import Settings

    engine = engine or make_engine(url)
    sessions = make_session_factory(engine)
    settings = Settings(data_dir=Path(tempfile.mkdtemp()), database_url=url)
    ctx = ServiceContext(sessions, clients=None, settings=settings)  # type: ignore[arg-type]
    with sessions() as session:
        old = session.scalars(select(JobRow).order_by(JobRow.created_at).limit(1)).one()
        an_id, then = old.id, old.created_at
    second_page = find_jobs(ctx, JobFilter(), limit=50).next_cursor
    return [
        ("dashboard", lambda: dashboard(ctx)),
        ("list, newest 50", lambda: find_jobs(ctx, JobFilter(), limit=50)),
        ("list, next page", lambda: find_jobs(ctx, JobFilter(), limit=50, cursor=second_page)),
        ("filter state=failed", lambda: find_jobs(ctx, JobFilter(states=("failed",)))),
        ("filter node (destination)", lambda: find_jobs(ctx, JobFilter(node=NODES[3]))),
        ("filter label team=t7", lambda: find_jobs(ctx, JobFilter(label=("team", "t7")))),
        ("filter schedule", lambda: find_jobs(ctx, JobFilter(schedule_id="sched-5"))),
        (
            "filter one day, 20 days ago",
            lambda: find_jobs(
                ctx,
                JobFilter(
                    created_after=then + timedelta(days=10),
                    created_before=then + timedelta(days=11),
                ),
            ),
        ),
        (
            "filter failed on a node, a day",
            lambda: find_jobs(
                ctx,
                JobFilter(
                    states=("failed",),
                    node=NODES[0],
                    created_after=then + timedelta(days=10),
                    created_before=then + timedelta(days=11),
                ),
            ),
        ),
        ("show one job", lambda: show_job(ctx, an_id)),
        ("short id (8 characters)", lambda: resolve_job_id(ctx, an_id[:8])),
        (METRICS, lambda: scrape(ctx)),
    ]


def measure(url: str, repeat: int, metrics: bool) -> dict[str, list[float]]:
    """Each read ``repeat`` times after one warm-up; the times in ms."""
    timings: dict[str, list[float]] = {}
    for name, read in readers(url):
        if name == METRICS and not metrics:
            continue
        read()
        spent = []
        for _ in range(repeat):
            started = time.perf_counter()
            read()
            spent.append(1000 * (time.perf_counter() - started))
        timings[name] = spent
    return timings


def p95(values: list[float]) -> float:
    """The 95th percentile (inclusive method)."""
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def explain(url: str) -> None:
    """PostgreSQL's plan of the list queries as the services send them."""
    sys.path.insert(0, str(ROOT))
    from sqlalchemy import event

    from orchestrator.db.engine import make_engine

    seen: list[tuple[str, Any]] = []
    engine = make_engine(url)
    event.listen(
        engine,
        "before_cursor_execute",
        lambda _c, _k, statement, params, *_: seen.append((statement, params)),
    )
    lists = [r for r in readers(url, engine) if r[0].startswith(("list", "filter", "short"))]
    for name, read in lists:
        seen.clear()
        read()
        print(f"\n## {name}")
        with engine.connect() as conn:
            for statement, params in seen:
                if "FROM jobs" not in statement or "count(" in statement.lower():
                    continue
                raw = conn.connection.driver_connection
                assert raw is not None
                with raw.cursor() as cursor:
                    cursor.execute("EXPLAIN (ANALYZE, COSTS OFF) " + statement, params)
                    print("\n".join(row[0] for row in cursor.fetchall()))


def added_indexes(url: str, revision: str) -> list[tuple[str, str]]:
    """The indexes this tree's migrations made that ``revision``'s did not: (name, definition)."""
    from sqlalchemy import text

    from orchestrator.db.engine import make_engine

    theirs = subprocess.run(
        [
            "git",
            "-C",
            str(ROOT),
            "grep",
            "-h",
            "-o",
            "-E",
            r"ix_[a-z_]+",
            revision,
            "--",
            "orchestrator/db",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'")
        ).all()
    engine.dispose()
    known = {line.split(":")[-1] for line in theirs}
    return [(n, d) for n, d in rows if n.startswith("ix_") and n not in known]


def run_at(revision: str, url: str, repeat: int, metrics: bool) -> dict[str, list[float]]:
    """The same reads by another revision of the project (a temporary worktree)."""
    from sqlalchemy import text

    from orchestrator.db.engine import make_engine

    extra = added_indexes(url, revision)
    engine = make_engine(url)
    with engine.begin() as conn:
        for name, _ in extra:
            conn.execute(text(f"DROP INDEX {name}"))
    try:
        figures = revisions.run_at(
            ROOT,
            revision,
            __file__,
            [
                "--measure-only",
                "--database-url",
                url,
                "--repeat",
                str(repeat),
                *([] if metrics else ["--no-metrics"]),
            ],
        )
    finally:
        with engine.begin() as conn:
            for _, definition in extra:
                conn.execute(text(definition))
        engine.dispose()
    return dict(figures)


def main() -> None:
    """Parse the options, fill, measure (and the other revision), print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--database-url", default=DEFAULT_URL, help="PostgreSQL only")
    parser.add_argument("--refill", action="store_true", help="write the history again")
    parser.add_argument("--compare-with", metavar="REV", help="a git revision to measure too")
    parser.add_argument("--explain", action="store_true", help="print the list queries' plans")
    parser.add_argument("--no-metrics", action="store_true", help="leave /metrics out")
    parser.add_argument("--measure-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    global ROOT
    if args.root:
        ROOT = Path(args.root)
    if not args.database_url.startswith("postgresql"):
        raise SystemExit("history_queries measures PostgreSQL: give --database-url postgresql+…")
    if args.measure_only:
        print(json.dumps(measure(args.database_url, args.repeat, not args.no_metrics)))
        return
    if not reachable(args.database_url):
        print(f"history_queries: skipped, no PostgreSQL answers at {args.database_url}")
        return
    populate(args.database_url, args.jobs, args.refill)
    metrics = not args.no_metrics
    other = (
        run_at(args.compare_with, args.database_url, args.repeat, metrics)
        if args.compare_with
        else None
    )
    ours = measure(args.database_url, args.repeat, metrics)
    width = max(len(name) for name in ours)
    head = f"{'ms':{width}}  {'p50':>8}  {'p95':>8}"
    if other is not None:
        head += f"  {args.compare_with + ' p95':>14}  {'ratio':>6}"
    print(head)
    for name, spent in ours.items():
        line = f"{name:{width}}  {statistics.median(spent):>8.1f}  {p95(spent):>8.1f}"
        if other is not None and name in other:
            line += f"  {p95(other[name]):>14.1f}  {p95(spent) / p95(other[name]):>6.2f}"
        print(line)
    print(
        f"\n{args.jobs:,} ended jobs on PostgreSQL, {args.repeat} reads each; "
        f"goal p95 <= {GOAL_MS:.0f} ms for the dashboard, lists and filters"
    )
    if args.explain:
        explain(args.database_url)


if __name__ == "__main__":
    main()
