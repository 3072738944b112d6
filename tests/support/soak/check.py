"""The independent checker: the nodes through their admin API, the database through its tables.

Nothing here calls the orchestrator's services or views: jobs, attempts and events are read with
plain SQL, node transfers come from ``NodeHistory`` (admin listings), files from the docroots.
Each invariant gives one row: what it demands, the figure, PASS or FAIL; the figures the run
measured (lag, submit-lease waits, faults injected) are rows without a verdict.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, text

from tests.support.sim import read_tree
from tests.support.soak.history import NODE_ENDED, OPEN_STATES, NodeHistory, NodeTransfer
from tests.support.soak.plan import Plan, SoakConfig
from tests.support.soak.stack import SoakStack

TERMINAL = ("completed", "failed", "canceled")
SHOWN = 3  # examples named in a failing row
# The node's wire statuses in the words the database stores.
STATUS_WORDS = {"partially_completed": "retrying", "cancelled": "canceled"}


@dataclass(frozen=True)
class Row:
    """One line of the table: what is measured or demanded, the figure, and a verdict."""

    what: str
    value: str
    result: str = ""  # PASS, FAIL, or "" for a measurement


@dataclass(frozen=True)
class Attempt:
    """An attempt row, as the checker reads it."""

    id: str
    job_id: str
    number: int
    node: str
    remote_id: str | None
    status: str
    bytes_transferred: int
    error_code: int | None


@dataclass(frozen=True)
class Job:
    """A job row, as the checker reads it."""

    id: str
    state: str
    reason: str | None
    attempt_count: int
    source: str
    destination: str
    destination_path: str
    folder: str


def verdict(ok: bool) -> str:
    """PASS or FAIL."""
    return "PASS" if ok else "FAIL"


def examples(items: list[str]) -> str:
    """The first few items of a failing row, and how many more."""
    shown = "; ".join(items[:SHOWN])
    more = len(items) - SHOWN
    return shown + (f"; and {more} more" if more > 0 else "")


def read_jobs(engine: Engine) -> dict[str, Job]:
    """Every job row with its nodes' names."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT j.id, j.state, j.reason, j.attempt_count, s.name, d.name, "
                "j.destination_path, j.source_paths FROM jobs j "
                "JOIN nodes s ON s.id = j.source_node_id "
                "JOIN nodes d ON d.id = j.destination_node_id"
            )
        ).all()
    jobs = {}
    for job_id, state, reason, count, source, destination, path, paths in rows:
        if isinstance(paths, str):  # SQLite hands JSON back as text through a raw query
            paths = json.loads(paths)
        jobs[str(job_id)] = Job(
            str(job_id), state, reason, count, source, destination, path, paths[0]["source"]
        )
    return jobs


def read_attempts(engine: Engine) -> dict[str, Attempt]:
    """Every attempt row by id, with its source node's name."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT a.id, a.job_id, a.number, n.name, a.remote_id, a.status, "
                "a.bytes_transferred, a.error_code FROM attempts a "
                "JOIN nodes n ON n.id = a.source_node_id"
            )
        ).all()
    return {str(r[0]): Attempt(str(r[0]), str(r[1]), *r[2:]) for r in rows}


def submitting_stays(engine: Engine) -> dict[str, list[tuple[datetime, datetime | None]]]:
    """Each job's stays in SUBMITTING (entered, left), from its state events."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT job_id, at, from_state, to_state FROM job_events "
                "WHERE kind = 'state' ORDER BY job_id, id"
            )
        ).all()
    stays: dict[str, list[tuple[datetime, datetime | None]]] = defaultdict(list)
    entered: dict[str, datetime] = {}
    for job_id, at, from_state, to_state in rows:
        at = _aware(at)
        if to_state == "submitting":
            entered[job_id] = at
        elif from_state == "submitting" and job_id in entered:
            stays[job_id].append((entered.pop(job_id), at))
    for job_id, at in entered.items():
        stays[job_id].append((at, None))
    return stays


def _aware(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite, raw
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


class Checker:
    """Reads everything once, then each method gives the rows of one invariant or measure."""

    def __init__(
        self,
        config: SoakConfig,
        plan: Plan,
        stack: SoakStack,
        history: NodeHistory,
        engine: Engine,
    ) -> None:
        self.config = config
        self.plan = plan
        self.stack = stack
        self.engine = engine
        self.threshold = 2 * config.poll_interval
        self.jobs = read_jobs(engine)
        self.attempts = read_attempts(engine)
        history.capture_all()
        self.transfers = history.all()
        self.by_tag: dict[str, list[NodeTransfer]] = defaultdict(list)
        for transfer in self.transfers:
            if transfer.attempt is not None:
                self.by_tag[transfer.attempt].append(transfer)
        self.docroots = {node.name: node.docroot for node in stack.nodes}
        self.counters = {node.name: stack.admins[node.name].counters() for node in stack.nodes}

    # -- invariants --------------------------------------------------------------------------

    def settled(self, settle_seconds: float | None) -> list[Row]:
        """Every job terminal, or NEEDS_ATTENTION with a reason, within the bound."""
        states = Counter(job.state for job in self.jobs.values())
        open_jobs = [
            f"{job.id} {job.state}" + (f" ({job.reason})" if job.reason else "")
            for job in self.jobs.values()
            if job.state not in TERMINAL and not (job.state == "needs_attention" and job.reason)
        ]
        missing = len(self.plan.jobs) - len(self.jobs)
        ok = not open_jobs and missing == 0
        took = f"within {settle_seconds:.0f} s" if settle_seconds is not None else "not in time"
        value = f"{len(self.jobs) - len(open_jobs)}/{len(self.plan.jobs)} {took}"
        if missing:
            value += f"; {missing} never created"
        if open_jobs:
            value += "; open: " + examples(open_jobs)
        rows = [
            Row(
                "every job terminal, or needs_attention with a reason, after the chaos",
                value,
                verdict(ok),
            )
        ]
        for state in ("completed", "failed", "needs_attention", "canceled"):
            if states[state] or state == "completed":
                rows.append(Row(f"  jobs {state}", str(states[state]) + self._reasons(state)))
        return rows

    def _reasons(self, state: str) -> str:
        if state == "completed":
            return ""
        reasons = Counter(
            (job.reason or "no reason")[:70] for job in self.jobs.values() if job.state == state
        )
        return " (" + "; ".join(f"{n} x {r}" for r, n in reasons.most_common(2)) + ")"

    def history_complete(self) -> list[Row]:
        """The listings saw every transfer the source nodes created (else the next rows could
        miss a duplicate)."""
        created = sum(self.counters[name]["transfers_created"] for name in self._sources())
        seen = len(self.transfers)
        return [
            Row(
                "node history complete: transfers listed = transfers_created",
                f"{seen} listed, {created} created",
                verdict(seen == created),
            )
        ]

    def one_transfer_per_attempt(self) -> list[Row]:
        """No two node transfers carry one attempt's tag; every tagged transfer is the remote id
        of its attempt; every recorded remote id is a transfer the node created."""
        duplicates = [
            f"attempt {tag}: transfers {', '.join(t.node + '/' + t.id for t in found)}"
            for tag, found in self.by_tag.items()
            if len(found) > 1
        ]
        orphans = []
        flagged = 0  # the job waits in needs_attention, its reason naming the attempt
        for transfer in self.transfers:
            attempt = self.attempts.get(transfer.attempt or "")
            if attempt is None:
                orphans.append(f"{transfer.node}/{transfer.id} tag {transfer.attempt}: no attempt")
            elif attempt.remote_id is None and self._flagged(attempt):
                flagged += 1
            elif attempt.remote_id != transfer.id or attempt.node != transfer.node:
                gone = "" if transfer.held else ", then forgotten by a node restart"
                orphans.append(
                    f"{transfer.node}/{transfer.id} ({transfer.status}{gone}) of attempt "
                    f"{attempt.id} (job {attempt.job_id}, {attempt.status}) whose remote id "
                    f"is {attempt.remote_id}"
                )
        known = {(t.node, t.id) for t in self.transfers}
        phantoms = [
            f"attempt {a.id} of job {a.job_id}: {a.node}/{a.remote_id}"
            for a in self.attempts.values()
            if a.remote_id is not None and (a.node, a.remote_id) not in known
        ]
        posted = sum(1 for a in self.attempts.values() if a.remote_id is not None)
        return [
            Row(
                "no duplicates: at most one node transfer per attempt tag",
                f"{len(duplicates)} of {posted} posted attempts"
                + (": " + examples(duplicates) if duplicates else ""),
                verdict(not duplicates),
            ),
            Row(
                "no orphans: every tagged node transfer is its attempt's remote id",
                f"{len(orphans)} of {len(self.transfers)} node transfers"
                + (f" (and {flagged} whose job needs attention for it)" if flagged else "")
                + (": " + examples(orphans) if orphans else ""),
                verdict(not orphans),
            ),
            Row(
                "every recorded remote id is a transfer the node created",
                f"{len(phantoms)} unknown" + (": " + examples(phantoms) if phantoms else ""),
                verdict(not phantoms),
            ),
        ]

    def _flagged(self, attempt: Attempt) -> bool:
        """Whether the attempt's job waits for a person, saying this attempt may have started."""
        job = self.jobs[attempt.job_id]
        return (
            job.state == "needs_attention"
            and job.attempt_count == attempt.number
            and attempt.id in (job.reason or "")
        )

    def files_identical(self) -> list[Row]:
        """Every COMPLETED job's files are at its destination, byte for byte."""
        differ = []
        completed = [job for job in self.jobs.values() if job.state == "completed"]
        for job in completed:
            source = read_tree(self.docroots[job.source] / job.folder)
            copied = read_tree(
                self.docroots[job.destination] / job.destination_path.strip("/") / job.folder
            )
            if source != copied:
                differ.append(f"job {job.id} ({job.folder}): {_tree_difference(source, copied)}")
        return [
            Row(
                "completed jobs' files byte-identical at the destination",
                f"{len(completed) - len(differ)}/{len(completed)}"
                + (": " + examples(differ) if differ else ""),
                verdict(not differ),
            )
        ]

    def none_left_open(self) -> list[Row]:
        """No job is open while the node says its transfer ended over 2 poll intervals ago."""
        now = time.time()
        stale = []
        for transfer in self.transfers:
            attempt = self.attempts.get(transfer.attempt or "")
            if attempt is None or not transfer.held or transfer.end_time is None:
                continue
            job = self.jobs.get(attempt.job_id)
            if job is None or job.attempt_count != attempt.number or job.state not in OPEN_STATES:
                continue
            if now - transfer.end_time > self.threshold:
                stale.append(
                    f"job {job.id} {job.state}, transfer {transfer.id} {transfer.status} "
                    f"{now - transfer.end_time:.1f} s ago"
                )
        return [
            Row(
                f"no job open after its node transfer ended (> 2 poll intervals, "
                f"{self.threshold:g} s), at the end",
                f"{len(stale)}" + (": " + examples(stale) if stale else ""),
                verdict(not stale),
            )
        ]

    def db_agrees(self) -> list[Row]:
        """For every attempt whose transfer the node still holds: the attempt's status, bytes and
        error code are the node's, and the job's state follows from its latest attempt. The same
        against the last listing of the ended transfers a restart made the node forget (there,
        an attempt the orchestrator marked lost agrees: the node forgot it first)."""
        rows = []
        for held, what in (
            (True, "database agrees with the node for every attempt the node still holds"),
            (False, "  and with the last listing of those a restart made the node forget"),
        ):
            differ = []
            checked = 0
            for transfer in self.transfers:
                attempt = self.attempts.get(transfer.attempt or "")
                if transfer.held != held or attempt is None or attempt.remote_id != transfer.id:
                    continue
                if not held and (not transfer.ended or attempt.status == "lost"):
                    continue
                checked += 1
                problem = self._disagreement(transfer, attempt)
                if problem:
                    differ.append(f"job {attempt.job_id} attempt {attempt.number}: {problem}")
            value = f"{checked - len(differ)}/{checked}"
            rows.append(
                Row(what, value + (": " + examples(differ) if differ else ""), verdict(not differ))
            )
        return rows

    def _disagreement(self, transfer: NodeTransfer, attempt: Attempt) -> str | None:
        status = STATUS_WORDS.get(transfer.status, transfer.status)
        job = self.jobs[attempt.job_id]
        latest = job.attempt_count == attempt.number
        if attempt.status != status and not (
            attempt.status == "abandoned" and status == "canceled"
        ):
            return f"attempt {attempt.status}, node {transfer.status}"
        if status not in NODE_ENDED:
            return f"the node still runs it ({status}) while the job is {job.state}"
        if attempt.bytes_transferred != transfer.bytes_transferred:
            return (
                f"bytes {attempt.bytes_transferred} in the database, "
                f"node {transfer.bytes_transferred}"
            )
        if status == "failed" and attempt.error_code != _int(transfer.error_code):
            return f"error code {attempt.error_code} in the database, node {transfer.error_code!r}"
        expected = {
            "completed": ("completed",),
            "failed": ("failed", "needs_attention"),
            "canceled": ("canceled",),
        }[status]
        if latest and job.state not in expected:
            return f"the node {status} it, the job is {job.state}"
        if not latest and status == "completed":
            return f"an earlier attempt completed on the node; the job is at {job.attempt_count}"
        return None

    # -- measures ----------------------------------------------------------------------------

    def submit_lease_waits(self, kills: list[datetime]) -> list[Row]:
        """How long jobs sat in SUBMITTING after a worker was killed (the submit lease)."""
        stays = submitting_stays(self.engine)
        waits = []
        for job_stays in stays.values():
            for entered, left in job_stays:
                for kill in kills:
                    if entered <= kill and (left is None or left > kill):
                        end = left or datetime.now(kill.tzinfo)
                        waits.append((end - kill).total_seconds())
                        break
        longest = max(
            (
                ((left or entered) - entered).total_seconds()
                for job_stays in stays.values()
                for entered, left in job_stays
            ),
            default=0.0,
        )
        value = (
            f"{len(waits)} stays, median {statistics.median(waits):.1f} s, max {max(waits):.1f} s"
            if waits
            else "no job was submitting when a worker was killed"
        )
        return [
            Row("submit-lease wait: SUBMITTING after a worker kill", value),
            Row("  longest SUBMITTING stay of any job", f"{longest:.1f} s"),
        ]

    def attempts_and_requests(self) -> list[Row]:
        """Attempts per job, and node API requests per completed job."""
        per_job = Counter(a.job_id for a in self.attempts.values())
        retried = sum(1 for n in per_job.values() if n > 1)
        completed = sum(1 for j in self.jobs.values() if j.state == "completed")
        requests = sum(sum(c["requests"].values()) for c in self.counters.values())
        return [
            Row(
                "attempts",
                f"{len(self.attempts)} for {len(self.jobs)} jobs; {retried} jobs made more "
                f"than one, at most {max(per_job.values(), default=0)}",
            ),
            Row(
                "node API requests per completed job",
                f"{requests / completed:.2f}" if completed else "n/a",
            ),
        ]

    def _sources(self) -> list[str]:
        return [pair.source.name for pair in self.stack.pairs]


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _tree_difference(source: dict[str, bytes], copied: dict[str, bytes]) -> str:
    missing = sorted(source.keys() - copied.keys())
    extra = sorted(copied.keys() - source.keys())
    changed = sorted(k for k in source.keys() & copied.keys() if source[k] != copied[k])
    parts = []
    for label, names in (("missing", missing), ("extra", extra), ("differ", changed)):
        if names:
            parts.append(f"{label} {', '.join(names[:2])}")
    return "; ".join(parts)
