"""The chaos driver: plays the seeded schedule against the running stack, and acts as the process
supervisor (a worker or beat that exits on its own is started again, and counted).

Process faults: SIGKILL of a worker's or beat's whole process group (started again after the
event's ``down`` seconds), SIGKILL of redis-server (everything in it lost; started again on its
port after ``down``), the database's sessions cut (PostgreSQL: ``pg_terminate_backend`` of every
session of the soak's database; SQLite: another connection holds ``BEGIN EXCLUSIVE`` for
``hold`` seconds). Node faults: ``POST /admin/restart`` of a source node (with or without its
history; the answer lists what the node forgot, and the checker keeps it), and hstssim's
fault switches armed through its admin API.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.support.processes import CeleryProcess
from tests.support.sim import SimAdmin
from tests.support.soak.history import NodeHistory
from tests.support.soak.plan import ChaosEvent, Plan
from tests.support.soak.stack import SoakStack

TICK = 0.2  # how often the supervisor looks at the processes


@dataclass
class ArmedFault:
    """An hstssim fault this driver armed, and how often it fired by the end of the chaos."""

    event: str  # the chaos event's kind
    node: str
    id: str
    kind: str
    count: int
    fired: int = 0


class ChaosDriver:
    """Plays ``plan.chaos``; counts what it did."""

    def __init__(self, stack: SoakStack, history: NodeHistory, plan: Plan) -> None:
        self.stack = stack
        self.history = history
        self.plan = plan
        self.admins = {node.name: SimAdmin(node) for node in stack.nodes}
        self.injected: Counter[str] = Counter()  # chaos events done, by kind
        self.skipped: Counter[str] = Counter()  # e.g. a kill of a worker that was down already
        self.exits: Counter[str] = Counter()  # processes that exited on their own (restarted)
        self.worker_kills: list[datetime] = []
        self.sessions_cut = 0
        self.armed: list[ArmedFault] = []
        self._due: list[tuple[float, CeleryProcess]] = []  # killed processes and when to start
        self._log = (stack.workdir / "chaos.log").open("a", buffering=1)  # one line per event
        self._postgres = None
        if stack.is_postgres:
            url = make_url(stack.config.database_url)
            admin_url = url.set(database="postgres")
            self._postgres = create_engine(admin_url, isolation_level="AUTOCOMMIT")

    # -- the schedule ------------------------------------------------------------------------

    def run(self, started: float) -> None:
        """Play every event at its time after ``started`` (monotonic), to the window's end."""
        for event in self.plan.chaos:
            self._supervise_until(started + event.at)
            self._say(
                f"+{time.monotonic() - started:.1f} s (planned +{event.at:.1f} s) "
                f"{event.kind} {event.params}"
            )
            self.act(event)
        self._supervise_until(started + self.stack.config.chaos_seconds)

    def _supervise_until(self, deadline: float) -> None:
        while (left := deadline - time.monotonic()) > 0:
            self.supervise()
            time.sleep(min(TICK, left))

    def act(self, event: ChaosEvent) -> None:
        """Do one event."""
        p = event.params
        kind = event.kind
        done = True
        if kind == "kill_worker":
            done = self._kill(self.stack.workers[p["worker"]], p["down"])
            if done:
                self.worker_kills.append(datetime.now(UTC))
        elif kind == "kill_beat":
            assert self.stack.beat is not None
            done = self._kill(self.stack.beat, p["down"])
        elif kind == "kill_redis":
            done = self._kill_redis(p["down"])
        elif kind == "cut_database":
            self._cut_database(p["hold"])
        elif kind == "restart_node":
            source = self.stack.pairs[p["pair"]].source
            forgotten = self.admins[source.name].restart(keep_history=p["keep_history"])
            self.history.forgotten(source.name, forgotten)  # the checker keeps them
            kind += " (keep history)" if p["keep_history"] else " (forget history)"
        else:
            pair = self.stack.pairs[p["pair"]]
            node = pair.source if p["role"] == "source" else pair.destination
            for fault in p["faults"]:
                self._arm(kind, node.name, fault)
        (self.injected if done else self.skipped)[kind] += 1

    def _kill(self, process: CeleryProcess, down: float) -> bool:
        if not process.alive:
            return False
        process.kill_group()
        self._due.append((time.monotonic() + down, process))
        return True

    def _kill_redis(self, down: float) -> bool:
        redis = self.stack.redis
        if not redis.alive:
            return False
        redis.kill_group()  # no AOF, no snapshot: every message in it is gone
        self._supervise_until(time.monotonic() + down)
        redis.start()
        return True

    def _cut_database(self, hold: float) -> None:
        if self._postgres is not None:
            name = make_url(self.stack.config.database_url).database
            with self._postgres.connect() as conn:
                cut = conn.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                ).scalar_one()
            self.sessions_cut += int(cut)
            return
        path = make_url(self.stack.config.database_url).database
        assert path
        conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        try:
            conn.execute("BEGIN EXCLUSIVE")
            try:
                self._supervise_until(time.monotonic() + hold)
            finally:
                conn.execute("ROLLBACK")
        finally:
            conn.close()

    def _arm(self, event: str, node: str, fault: dict[str, Any]) -> None:
        answer = self.admins[node].fault(**fault)
        self.armed.append(ArmedFault(event, node, answer["id"], fault["kind"], fault["count"]))

    # -- the supervisor ----------------------------------------------------------------------

    def supervise(self) -> None:
        """Start what was killed once its time is up, and what exited on its own at once."""
        now = time.monotonic()
        due = [(at, p) for at, p in self._due if at <= now]
        self._due = [(at, p) for at, p in self._due if at > now]
        for _, process in due:
            if not process.alive:
                process.start(wait=False)
        for process in self.stack.celery:
            if process.exited_on_its_own:
                self.exits[process.kind] += 1
                self._say(f"{process.name} exited on its own ({process.returncode}); started again")
                process.kill_group()  # its pool children, if any are left
                process.start(wait=False)

    def calm(self) -> None:
        """End the chaos: count and clear the armed faults, start every killed process now."""
        for name, admin in self.admins.items():
            still = {f["id"]: f for f in admin.faults()}
            for fault in self.armed:
                if fault.node == name:
                    left = still.get(fault.id)
                    fault.fired = int(left["fired"]) if left else fault.count
            admin.clear_faults()
        if not self.stack.redis.alive:
            self.stack.redis.start()
        for _, process in self._due:
            if not process.alive:
                process.start(wait=False)
        self._due = []
        self.supervise()

    def _say(self, line: str) -> None:
        self._log.write(f"{datetime.now(UTC).isoformat(timespec='milliseconds')} {line}\n")

    def close(self) -> None:
        """Release the admin clients, the PostgreSQL admin engine and the log."""
        self._log.close()
        for admin in self.admins.values():
            admin.close()
        if self._postgres is not None:
            self._postgres.dispose()
