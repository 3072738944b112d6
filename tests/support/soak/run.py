"""One soak run: start the stack, create the planned jobs while the chaos driver plays its
schedule, stop the chaos, wait (with a deadline) until every job has settled, then check."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, bindparam, text
from sqlalchemy.exc import DBAPIError

from orchestrator.db.engine import make_engine
from orchestrator.domain.jobs import JobSpec
from orchestrator.services.conveyor.jobs import create_job
from tests.support.sim import write_tree
from tests.support.soak.chaos import ChaosDriver
from tests.support.soak.check import Checker, Row
from tests.support.soak.history import LagSampler, NodeHistory
from tests.support.soak.plan import CHAOS_WEIGHTS, Plan, PlannedJob, SoakConfig, make_plan
from tests.support.soak.stack import SoakStack

SETTLED = ("completed", "failed", "canceled", "needs_attention")
CREATE_TIMEOUT = 60.0  # one job's creation, retried through outages
TICK = 0.25


@dataclass
class SoakResult:
    """The checker's rows; ``ok`` when no invariant failed."""

    config: SoakConfig
    rows: list[Row]
    logs: str = ""  # the end of every process log, kept when an invariant failed

    @property
    def ok(self) -> bool:
        """Whether every invariant held."""
        return all(row.result != "FAIL" for row in self.rows)

    @property
    def failed(self) -> list[Row]:
        """The invariants that broke."""
        return [row for row in self.rows if row.result == "FAIL"]

    def table(self) -> str:
        """The one table a run prints."""
        lines = ["| what | value | result |", "|---|---|---|"]
        for row in self.rows:
            value = row.value.replace("|", "/")
            lines.append(f"| {row.what} | {value} | {row.result} |")
        return "\n".join(lines)


class JobCreator:
    """A thread that creates the planned jobs at their times, as the API would (create_job with
    an idempotency key, retried through database and broker outages)."""

    def __init__(self, stack: SoakStack, plan: Plan) -> None:
        self.stack = stack
        self.plan = plan
        self.created: dict[int, str] = {}
        self.retries = 0
        self.gave_up: list[str] = []
        self._thread = threading.Thread(target=self._run, name="soak-jobs", daemon=True)
        self._started = 0.0

    def start(self, started: float) -> None:
        """Create jobs at their times after ``started`` (monotonic)."""
        self._started = started
        self._thread.start()

    def join(self, timeout: float) -> bool:
        """Wait for the last job; whether the thread finished."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        for job in self.plan.jobs:
            delay = self._started + job.at - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # the planned arrival time of this job
            self._create(job)

    def _create(self, job: PlannedJob) -> None:
        pair = self.stack.pairs[job.pair]
        spec = JobSpec.model_validate(
            {
                "source_node": pair.source.name,
                "source_paths": [job.folder],
                "destination_node": pair.destination.name,
                "destination_path": f"in-{job.folder}",
                "options": {"target_rate_kbps": job.rate_kbps} if job.rate_kbps else {},
            }
        )
        assert self.stack.ctx is not None
        deadline = time.monotonic() + CREATE_TIMEOUT
        while True:
            try:
                made = create_job(self.stack.ctx, spec, idempotency_key=f"soak-{job.index}")
            except DBAPIError as exc:  # the database is cut or locked: the API would retry
                self.retries += 1
                if time.monotonic() > deadline:
                    self.gave_up.append(f"{job.folder}: {type(exc).__name__}")
                    return
                time.sleep(TICK)
                continue
            self.created[job.index] = made.job.id
            return


def write_files(stack: SoakStack, plan: Plan) -> None:
    """Every planned job's files on its source node."""
    for job in plan.jobs:
        write_tree(stack.pairs[job.pair].source.docroot, job.files(stack.config.seed))


def run_soak(config: SoakConfig, say: Callable[[str], None] = print) -> SoakResult:
    """Run one soak and check it; ``say`` hears progress lines (the seed first)."""
    plan = make_plan(config)
    say(
        f"soak: seed {config.seed}, {config.jobs} jobs, {config.pairs} pairs, "
        f"{config.chaos_seconds:g} s of chaos ({len(plan.chaos)} events), "
        f"database {config.database_url.split(':')[0]}, work dir {config.workdir}"
    )
    stack = SoakStack(config)
    # This process's own warnings (a publish that failed while Redis was down) go to a file.
    log_file = logging.FileHandler(config.workdir / "soak.log")
    logging.getLogger().addHandler(log_file)
    began = time.monotonic()
    try:
        stack.start()
        write_files(stack, plan)
        history = NodeHistory([pair.source for pair in stack.pairs])
        engine = make_engine(config.database_url)
        sampler = LagSampler(
            history, engine, threshold=2 * config.poll_interval, every=config.sample_seconds
        )
        driver = ChaosDriver(stack, history, plan)
        creator = JobCreator(stack, plan)
        try:
            started = time.monotonic()
            sampler.start()
            creator.start(started)
            driver.run(started)
            driver.calm()
            say(f"soak: chaos over after {time.monotonic() - started:.0f} s; settling")
            calm = time.monotonic()
            sampler.settling = True
            creator.join(max(0.0, CREATE_TIMEOUT - (time.monotonic() - calm)))
            settled_in = _settle(config, driver, engine, calm)
            sampler.stop()
            checker = Checker(config, plan, stack, history, engine)
            rows = _rows(config, plan, checker, driver, creator, sampler, settled_in)
            rows.append(Row("wall time", f"{time.monotonic() - began:.0f} s"))
        finally:
            sampler.stop()
            driver.close()
            history.close()
            engine.dispose()
        result = SoakResult(config, rows)
        if not result.ok:
            result.logs = stack.report()
        return result
    finally:
        stack.close()
        logging.getLogger().removeHandler(log_file)
        log_file.close()


def _settle(config: SoakConfig, driver: ChaosDriver, engine: Engine, calm: float) -> float | None:
    """Wait until every job has settled; seconds after the chaos, None at the deadline."""
    query = text("SELECT count(*) FROM jobs WHERE state NOT IN :settled").bindparams(
        bindparam("settled", expanding=True)
    )
    deadline = calm + config.settle_seconds
    while time.monotonic() < deadline:
        driver.supervise()
        try:
            with engine.connect() as conn:
                open_jobs = conn.execute(query, {"settled": list(SETTLED)}).scalar_one()
                total = conn.execute(text("SELECT count(*) FROM jobs")).scalar_one()
        except DBAPIError:
            open_jobs, total = -1, 0
        if open_jobs == 0 and total >= config.jobs:
            return time.monotonic() - calm
        time.sleep(TICK)
    return None


def _rows(
    config: SoakConfig,
    plan: Plan,
    checker: Checker,
    driver: ChaosDriver,
    creator: JobCreator,
    sampler: LagSampler,
    settled_in: float | None,
) -> list[Row]:
    db = config.database_url.split(":")[0].split("+")[0]
    rows = [
        Row("seed", str(config.seed)),
        Row(
            "run",
            f"{config.jobs} jobs, {config.pairs} node pairs, {config.workers} workers, {db}, "
            f"{config.chaos_seconds:g} s of chaos, poll interval {config.poll_interval:g} s",
        ),
        Row(
            "jobs created (create_job, retried through outages)",
            f"{len(creator.created)}/{config.jobs}, {creator.retries} retries"
            + (f"; gave up: {', '.join(creator.gave_up[:3])}" if creator.gave_up else ""),
        ),
    ]
    rows += _fault_rows(driver)
    rows += checker.settled(settled_in)
    rows += checker.history_complete()
    rows += checker.one_transfer_per_attempt()
    rows += checker.files_identical()
    rows += checker.none_left_open()
    lag = sampler.lag
    rows += [
        Row(
            "status lag, sampled: worst (job open after its node transfer ended)",
            f"{lag.worst:.1f} s"
            + (f" ({lag.worst_what})" if lag.worst_what else "")
            + f"; {lag.samples} samples, {lag.failed_samples} missed in outages",
        ),
        Row(
            f"  attempts seen open > 2 poll intervals ({lag.threshold:g} s) after their end",
            str(len(lag.late)),
        ),
        Row("  worst after the chaos stopped", f"{lag.worst_settling:.1f} s"),
    ]
    rows += checker.db_agrees()
    rows += checker.submit_lease_waits(driver.worker_kills)
    rows += checker.attempts_and_requests()
    return rows


def _fault_rows(driver: ChaosDriver) -> list[Row]:
    fired: Counter[str] = Counter()
    armed: Counter[str] = Counter()
    for fault in driver.armed:
        armed[fault.event] += 1
        fired[fault.event] += fault.fired
    rows = []
    kinds = [k for k in CHAOS_WEIGHTS if k != "restart_node"]
    kinds[kinds.index("cut_database") + 1 : kinds.index("cut_database") + 1] = [
        "restart_node (keep history)",
        "restart_node (forget history)",
    ]
    for kind in kinds:
        value = str(driver.injected[kind])
        if armed[kind]:
            value += f" ({armed[kind]} hstssim faults armed, fired {fired[kind]} times)"
        if kind == "cut_database" and driver.sessions_cut:
            value += f" ({driver.sessions_cut} sessions terminated)"
        if driver.skipped[kind]:
            value += f"; {driver.skipped[kind]} skipped (already down)"
        rows.append(Row(f"fault: {kind.replace('_', ' ')}", value))
    for kind in ("worker", "beat"):
        rows.append(
            Row(f"supervisor: {kind} exited on its own, started again", str(driver.exits[kind]))
        )
    return rows
