"""submit(job_id): at most one node transfer per attempt, and none lost (DESIGN.md rule 2).

1. CAS ADMITTED → SUBMITTING and commit an attempt row (its uuid goes in the spec's tags).
2. /files/info on the source, once per batch: a missing source path fails its job at once;
   files' sizes become the job's expected totals.
3. upload_setup on the destination (a fresh token every time); for a pull, download_setup on
   the source; an SSH endpoint's spec is built from its registry entry instead (modes.py).
4. Mark a chunk of the group's attempts "posting" in one statement and one commit: from here
   on, the node may hold their transfers. Each is posted within one node call's time of that
   mark (``_post_window``) or not by this run, so a tag search waits that long more.
5. POST /ops/transfers on the node that runs the transfer (the source; for a pull, the
   destination); record the group's remote ids and CAS SUBMITTING → SUBMITTED.
A redelivered or swept submit of a SUBMITTING job resumes at the step it reached; an attempt
that may have been posted is looked up by its tag before anything is posted again.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import cast

from sqlalchemy import (
    BigInteger,
    Integer,
    Table,
    Update,
    bindparam,
    case,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from orchestrator.db.engine import rowcount
from orchestrator.db.tables import AttemptRow, JobRow, NodeCursorRow, NodeRow
from orchestrator.domain.jobs import TransferMode
from orchestrator.domain.states import AttemptState, JobState
from orchestrator.domain.transfers import (
    TAG_KEY,
    TransferSnapshot,
    TransferSpec,
    TransferStatus,
)
from orchestrator.errors import (
    InvalidIterationToken,
    NodeAuthError,
    NodeConfigurationError,
    NodeError,
    NodeRequestRejected,
    NodeServerError,
    NodeUnreachable,
    TransferSetupError,
)
from orchestrator.logsetup import log_context
from orchestrator.nodeapi.client import NodeClient
from orchestrator.services.context import ServiceContext
from orchestrator.services.conveyor import existing, modes, pacing
from orchestrator.services.conveyor.finisher import apply_snapshot, note_attempt, retry_delay
from orchestrator.services.conveyor.refusals import disable_refusing_node
from orchestrator.services.conveyor.sourcecheck import Verdict, check_sources
from orchestrator.services.conveyor.transitions import move, move_many
from orchestrator.settings import Settings

log = logging.getLogger(__name__)

LISTED = 3  # a report of more jobs names only those that were not submitted


class Outcome(StrEnum):
    """How far one job's submission got in this run."""

    SUBMITTED = "submitted"  # the node holds its transfer, recorded (posted now or adopted)
    COMPLETED = "completed"  # nothing to post: the destination already held the files
    WAITING = "waiting"  # an unclear POST: the tag is looked up again later
    RETRYING = "retrying"  # nothing started on the node; a new attempt after back-off
    FAILED = "failed"
    NEEDS_ATTENTION = "needs_attention"
    CANCELED = "canceled"
    SKIPPED = "skipped"  # nothing to do here: another worker has it, or the job moved on


@dataclass(frozen=True)
class JobOutcome:
    """One job's outcome, and the sentence an operator reads in Flower and the log."""

    job_id: str
    outcome: Outcome
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class SubmitReport:
    """What one submit run did to each of its jobs."""

    outcomes: list[JobOutcome] = field(default_factory=list)

    def of(self, outcome: Outcome) -> list[JobOutcome]:
        """The jobs that ended this run with ``outcome``."""
        return [o for o in self.outcomes if o.outcome is outcome]

    def __str__(self) -> str:
        if len(self.outcomes) <= LISTED:
            return "; ".join(map(str, self.outcomes)) or "nothing to submit"
        others = [str(o) for o in self.outcomes if o.outcome is not Outcome.SUBMITTED]
        submitted = len(self.outcomes) - len(others)
        return f"{len(self.outcomes)} jobs: {submitted} submitted; " + "; ".join(others)


def submit(ctx: ServiceContext, *job_ids: str) -> SubmitReport:
    """Drive jobs' submissions as far as they can go; the report says what happened to each.

    Jobs that need a token share one upload_setup call per destination node (one
    download_setup per source node for pulls; the call takes a list of transfer requests), so
    a batch costs one request there instead of one per job.
    """
    report = SubmitReport()
    ready: list[_Work] = []
    lease = _BatchLease(ctx)
    fresh, outcomes = _claim_admitted(ctx, job_ids)
    report.outcomes.extend(outcomes)
    ready.extend(fresh)
    lease.pending.update(w.job.id for w in fresh)
    done = {w.job.id for w in fresh} | {o.job_id for o in outcomes}
    for job_id in (j for j in job_ids if j not in done):
        lease.keep()
        with log_context(job_id=job_id):
            claimed = _claim(ctx, job_id)
            if isinstance(claimed, JobOutcome):
                report.outcomes.append(claimed)
                continue
            work = _load(ctx, job_id, claimed)
            if isinstance(work, JobOutcome):
                report.outcomes.append(work)
                continue
            with log_context(node=work.runner.name, attempt=claimed.number):
                try:
                    early = _resume(ctx, work)
                except NodeConfigurationError as exc:  # the runner's entry is unusable
                    early = _not_posted(ctx, work.job, work.attempt, exc)
            if early is not None:
                report.outcomes.append(early)
            else:
                ready.append(work)
                lease.pending.add(job_id)
    ready = _check_sources(ctx, ready, lease, report)
    ready = _settle_existing(ctx, ready, lease, report)
    by_granter: dict[tuple[str, int], list[_Work]] = {}
    for work in ready:
        by_granter.setdefault((work.job.mode, work.granter.id), []).append(work)
    for group in by_granter.values():
        report.outcomes.extend(_grant_and_post(ctx, group, lease))
    return report


class _BatchLease:
    """Keeps the leases of a batch's claimed jobs alive while the batch works through them.

    A lease only has to outlast one node call: it is renewed (one UPDATE for every job still
    waiting its turn, or posted and waiting for its remote id to be recorded) whenever a third
    of it has passed, or less than one call is left of it, before the next call. A worker that
    dies therefore leaves its batch to the sweeper after about one lease, not after the time
    the whole batch would have taken.
    """

    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx
        self._renewed = time.monotonic()
        self.pending: set[str] = set()  # claimed, waiting for their token and POST

    def keep(self) -> None:
        """Renew the pending jobs' leases if a third of the lease has passed, or if what is
        left of it might not outlast the next node call."""
        settings = self._ctx.settings
        seconds = settings.submit_lease_seconds
        call = settings.node_connect_timeout + settings.node_read_timeout
        due = min(seconds / 3, seconds - call)  # what is left must outlast the next call
        if not self.pending or time.monotonic() - self._renewed < due:
            return
        job_ids = sorted(self.pending)
        now = self._ctx.now()
        with self._ctx.sessions() as session:
            session.execute(
                update(JobRow)
                .where(JobRow.id.in_(job_ids), JobRow.state == JobState.SUBMITTING)
                .values(next_attempt_at=now + timedelta(seconds=seconds))
                .execution_options(synchronize_session=False)
            )
            session.commit()
        self._renewed = time.monotonic()


def _skipped(job_id: str, why: str) -> JobOutcome:
    return JobOutcome(job_id, Outcome.SKIPPED, f"job {job_id} {why}")


@dataclass(frozen=True)
class _Work:
    """One claimed job with its attempt and nodes."""

    job: JobRow
    attempt: AttemptRow
    source: NodeRow
    destination: NodeRow

    @property
    def runner(self) -> NodeRow:
        """The node that runs the transfer (the POST goes there)."""
        return modes.runner(self.job, self.source, self.destination)

    @property
    def granter(self) -> NodeRow:
        """The node that grants the token."""
        return modes.granter(self.job, self.source, self.destination)


def _claim_admitted(
    ctx: ServiceContext, job_ids: tuple[str, ...]
) -> tuple[list[_Work], list[JobOutcome]]:
    """Claim the batch's ADMITTED jobs in one transaction: one UPDATE moves them all to
    SUBMITTING, then one INSERT adds their attempts and one their events; their nodes are read
    once. Jobs in any other state are left to ``_claim``, one by one."""
    now = ctx.now()
    with ctx.unit_of_work() as work:
        session = work.session
        jobs = {
            job.id: job
            for job in session.scalars(
                select(JobRow).where(
                    JobRow.id.in_(job_ids),
                    JobRow.state == JobState.ADMITTED,
                    JobRow.cancel_requested.is_(False),
                )
            )
        }
        if not jobs:
            return [], []
        messages = {
            job_id: f"submitting attempt {jobs[job_id].attempt_count + 1}"
            for job_id in job_ids
            if job_id in jobs
        }
        lease = now + timedelta(seconds=ctx.settings.submit_lease_seconds)
        moved = move_many(
            work,
            messages,
            JobState.ADMITTED,
            JobState.SUBMITTING,
            at=now,
            values={"attempt_count": JobRow.attempt_count + 1, "next_attempt_at": lease},
        )
        attempts = {
            job_id: AttemptRow(
                id=str(uuid.uuid4()),
                job_id=job_id,
                number=jobs[job_id].attempt_count + 1,
                source_node_id=modes.runner_id(jobs[job_id]),
                status=AttemptState.CREATED,
                created_at=now,
            )
            for job_id in moved
        }
        session.add_all(attempts.values())
        node_ids = {j.source_node_id for j in jobs.values()} | {
            j.destination_node_id for j in jobs.values()
        }
        nodes = {n.id: n for n in session.scalars(select(NodeRow).where(NodeRow.id.in_(node_ids)))}
        work.commit()
    claimed = []
    for job_id in moved:
        job = jobs[job_id]
        set_committed_value(job, "attempt_count", job.attempt_count + 1)
        set_committed_value(job, "state", JobState.SUBMITTING)
        claimed.append(
            _Work(job, attempts[job_id], nodes[job.source_node_id], nodes[job.destination_node_id])
        )
    raced = [
        _skipped(job_id, "was taken by another worker") for job_id in jobs if job_id not in moved
    ]
    return claimed, raced


def _claim(ctx: ServiceContext, job_id: str) -> JobOutcome | AttemptRow:
    """Take the job for this worker: a new attempt, or the SUBMITTING one whose lease ran out."""
    now = ctx.now()
    lease = now + timedelta(seconds=ctx.settings.submit_lease_seconds)
    with ctx.unit_of_work() as work:
        session = work.session
        job = session.get(JobRow, job_id)
        if job is None:
            return _skipped(job_id, "does not exist")
        if job.state == JobState.ADMITTED:
            if job.cancel_requested:
                move(work, job_id, JobState.ADMITTED, JobState.CANCELED, "canceled", at=now)
                work.commit()
                return JobOutcome(
                    job_id, Outcome.CANCELED, f"job {job_id} canceled before submission"
                )
            number = job.attempt_count + 1
            moved = move(
                work,
                job_id,
                JobState.ADMITTED,
                JobState.SUBMITTING,
                f"submitting attempt {number}",
                at=now,
                values={"attempt_count": number, "next_attempt_at": lease},
            )
            if moved is None:
                return _skipped(job_id, "was taken by another worker")
            attempt = AttemptRow(
                id=str(uuid.uuid4()),
                job_id=job_id,
                number=number,
                source_node_id=modes.runner_id(job),
                status=AttemptState.CREATED,
                created_at=now,
            )
            session.add(attempt)
            work.commit()
            return attempt
        if job.state == JobState.SUBMITTING:
            taken = session.execute(
                update(JobRow)
                .where(
                    JobRow.id == job_id,
                    JobRow.state == JobState.SUBMITTING,
                    (JobRow.next_attempt_at.is_(None)) | (JobRow.next_attempt_at <= now),
                )
                .values(next_attempt_at=lease)
                .execution_options(synchronize_session=False)
            )
            if rowcount(taken) != 1:
                return _skipped(job_id, "is being submitted by another worker")
            attempt_row = _latest_attempt(session, job_id)
            work.commit()
            if attempt_row is None:  # cannot happen: SUBMITTING always has an attempt
                return _skipped(job_id, "is submitting without an attempt")
            return attempt_row
        return _skipped(job_id, f"is {job.state}: nothing to submit")


def _latest_attempt(session: Session, job_id: str) -> AttemptRow | None:
    return session.scalar(
        select(AttemptRow)
        .where(AttemptRow.job_id == job_id)
        .order_by(AttemptRow.number.desc())
        .limit(1)
    )


def _load(ctx: ServiceContext, job_id: str, attempt: AttemptRow) -> _Work | JobOutcome:
    with ctx.sessions() as session:
        job = session.get(JobRow, job_id)
        source = session.get(NodeRow, job.source_node_id) if job else None
        destination = session.get(NodeRow, job.destination_node_id) if job else None
    if job is None or source is None or destination is None:
        return _skipped(job_id, "lost its nodes")
    return _Work(job, attempt, source, destination)


def _resume(ctx: ServiceContext, work: _Work) -> JobOutcome | None:
    """Finish what an earlier run started; None when the job needs a token and a POST."""
    job, attempt = work.job, work.attempt
    src = ctx.clients.get(attempt.source_node_id)  # the node that runs the transfer
    if attempt.remote_id is not None:
        return _record_posted(ctx, job, attempt, attempt.remote_id, src, node=src.node)
    if attempt.post_started_at is not None:
        found = _look_for_tag(ctx, job, attempt, src)
        if found is not None:
            return found
    if job.cancel_requested:
        with ctx.unit_of_work() as unit:
            move(unit, job.id, JobState.SUBMITTING, JobState.CANCELED, "canceled", at=ctx.now())
            unit.commit()
        return JobOutcome(
            job.id, Outcome.CANCELED, f"job {job.id} canceled before its transfer was posted"
        )
    return None


def _check_sources(
    ctx: ServiceContext, ready: list[_Work], lease: _BatchLease, report: SubmitReport
) -> list[_Work]:
    """Ask each source node once about the batch's paths, before any token or POST claim: a
    job with a missing path fails at once; the others go on, with their sizes when known."""
    if not ready:
        return ready
    verdicts = check_sources(ctx, [(w.job, w.source) for w in ready], before_call=lease.keep)
    sized: dict[str, Verdict] = {}
    kept = []
    for work in ready:
        verdict = verdicts.get(work.job.id)
        if verdict is not None and verdict.missing:
            lease.pending.discard(work.job.id)
            with log_context(job_id=work.job.id, node=work.source.name):
                report.outcomes.append(_source_missing(ctx, work, verdict.reason(work.source.name)))
            continue
        if verdict is not None and verdict.bytes_expected is not None:
            sized[work.job.id] = verdict
            set_committed_value(work.job, "bytes_expected", verdict.bytes_expected)
        kept.append(work)
    if sized:
        _record_sizes(ctx, sized)
    return kept


def _source_missing(ctx: ServiceContext, work: _Work, reason: str) -> JobOutcome:
    """A source path is not on the node: the job fails for good, its attempt never posted."""
    job, attempt = work.job, work.attempt
    now = ctx.now()
    with ctx.unit_of_work() as unit:
        abandoned = unit.session.execute(
            update(AttemptRow)
            .where(
                AttemptRow.id == attempt.id,
                AttemptRow.post_started_at.is_(None),
                AttemptRow.remote_id.is_(None),
            )
            .values(status=AttemptState.ABANDONED, ended_at=now, error_text=reason)
        )
        moved = rowcount(abandoned) == 1 and (
            move(
                unit,
                job.id,
                JobState.SUBMITTING,
                JobState.FAILED,
                f"not posted: {reason}",
                at=now,
                values={"reason": reason, "next_attempt_at": None},
            )
            is not None
        )
        if not moved:
            unit.rollback()
            return _skipped(job.id, "moved on while its sources were checked")
        unit.commit()
    log.info("job %s failed before posting: %s", job.id, reason)
    return JobOutcome(job.id, Outcome.FAILED, f"job {job.id} failed: {reason}")


def _settle_existing(
    ctx: ServiceContext, ready: list[_Work], lease: _BatchLease, report: SubmitReport
) -> list[_Work]:
    """Jobs whose last transfer found a destination file: compare, end the job, post nothing."""
    kept = []
    for work in ready:
        if not existing.needs_comparison(ctx, work.job, work.attempt):
            kept.append(work)
            continue
        lease.pending.discard(work.job.id)
        lease.keep()
        job_id = work.job.id
        result = existing.compare(ctx, work.job, work.source, work.destination)
        if not existing.settle(ctx, work.job, work.attempt, result):
            report.outcomes.append(_skipped(job_id, "moved on while it was compared"))
        else:
            outcome = Outcome(result.target.value)
            report.outcomes.append(JobOutcome(job_id, outcome, f"job {job_id}: {result.text}"))
    return kept


def _record_sizes(ctx: ServiceContext, sized: dict[str, Verdict]) -> None:
    """The jobs' expected bytes and files, known before their transfers start (one UPDATE)."""
    with ctx.sessions() as session:
        session.execute(
            update(JobRow)
            .where(JobRow.id.in_(list(sized)), JobRow.state == JobState.SUBMITTING)
            .values(
                bytes_expected=case(
                    {j: literal(v.bytes_expected, BigInteger) for j, v in sized.items()},
                    value=JobRow.id,
                ),
                files_expected=case(
                    {j: literal(v.files_expected, Integer) for j, v in sized.items()},
                    value=JobRow.id,
                ),
            )
            .execution_options(synchronize_session=False)
        )
        session.commit()


def _grant_and_post(
    ctx: ServiceContext, group: list[_Work], lease: _BatchLease
) -> list[JobOutcome]:
    """One *_setup on the group's granting node (upload_setup on the destination, or for a
    pull download_setup on the source), then the POSTs, claimed a chunk at a time."""
    lease.keep()
    grants: Sequence[TransferSpec | NodeError]
    try:
        grants = modes.request_grants(
            ctx, group[0].granter, TransferMode(group[0].job.mode), [w.job for w in group]
        )
    except NodeError as exc:
        lease.pending.difference_update(w.job.id for w in group)
        return [_not_posted(ctx, w.job, w.attempt, exc) for w in group]
    outcomes = []
    todo: list[_Ready] = []
    for work, grant in zip(group, grants, strict=True):
        with log_context(job_id=work.job.id, node=work.runner.name, attempt=work.attempt.number):
            ready = _prepare(ctx, work, grant)
        if isinstance(ready, _Ready):
            todo.append(ready)
        else:
            lease.pending.discard(work.job.id)
            outcomes.append(ready)
    posted: list[_Posted] = []
    pace = _Pace(_post_window(ctx.settings))
    while todo:
        size = pace.size()
        chunk, todo = todo[:size], todo[size:]
        claim = _mark_posting(ctx, [r.work.attempt.id for r in chunk], pace.window)
        for ready in chunk:
            lease.keep()  # a posted job stays in the lease until its remote id is recorded
            work = ready.work
            with log_context(
                job_id=work.job.id, node=work.runner.name, attempt=work.attempt.number
            ):
                outcome = _post(ctx, ready, claim, pace)
            if isinstance(outcome, _Posted):
                posted.append(outcome)
            else:
                lease.pending.discard(work.job.id)
                outcomes.append(outcome)
    outcomes.extend(_record_all_posted(ctx, posted))
    lease.pending.difference_update(p.work.job.id for p in posted)
    pacing.expect_ends(ctx, _expected_ends(posted))
    return outcomes


def _expected_ends(posted: list[_Posted]) -> dict[int, list[float]]:
    """Seconds until each posted transfer should end, by the node that runs it: its size at
    the rate its job asked for (a job without either is left to the node's feed)."""
    ends: dict[int, list[float]] = {}
    for p in posted:
        size = p.work.job.bytes_expected
        rate = (p.work.job.options or {}).get("target_rate_kbps")
        if size is not None and isinstance(rate, int | float) and rate > 0:
            ends.setdefault(p.work.runner.id, []).append(size * 8 / (rate * 1000))
    return ends


@dataclass(frozen=True)
class _Posted:
    """A POST the node answered with its transfer's id, not recorded yet."""

    work: _Work
    remote_id: str
    src: NodeClient


@dataclass(frozen=True)
class _Ready:
    """A granted job with the spec to POST and the client of the node that runs it."""

    work: _Work
    spec: TransferSpec
    src: NodeClient


@dataclass(frozen=True)
class _Claim:
    """The attempts one mark won, and the monotonic time after which none of them is posted."""

    won: frozenset[str]
    post_by: float


class _Pace:
    """How many attempts one mark claims: as many as the slowest POST seen so far lets this run
    send within half the window (a first chunk of ``FIRST`` before any POST was timed)."""

    FIRST = 16

    def __init__(self, window: float) -> None:
        self.window = window
        self.slowest = 0.0

    def size(self) -> int:
        """The next chunk's size."""
        if self.slowest <= 0:
            return self.FIRST
        return max(1, int(self.window / 2 / self.slowest))

    def timed(self, seconds: float) -> None:
        """One POST took this long."""
        self.slowest = max(self.slowest, seconds)


def _post_window(settings: Settings) -> float:
    """How long after its mark an attempt may still be posted: one node call. A tag search
    concludes nothing started only this long plus ``post_settle_seconds`` after the mark."""
    return settings.node_connect_timeout + settings.node_read_timeout


def _prepare(
    ctx: ServiceContext, work: _Work, grant: TransferSpec | NodeError
) -> _Ready | JobOutcome:
    """The runner's spec from the grant and the runner's client, or why there is nothing to post."""
    job, attempt = work.job, work.attempt
    if isinstance(grant, NodeError):
        return _not_posted(ctx, job, attempt, grant)
    try:
        src = ctx.clients.get(attempt.source_node_id)  # the node that runs the transfer
    except NodeConfigurationError as exc:  # the runner's entry is unusable: nothing was posted
        return _not_posted(ctx, job, attempt, exc)
    spec = modes.spec_to_post(job, attempt.id, grant, work.source, work.destination)
    return _Ready(work, spec, src)


def _post(ctx: ServiceContext, ready: _Ready, claim: _Claim, pace: _Pace) -> JobOutcome | _Posted:
    """POST one claimed attempt; the caller records the remote id (a crash before it does is
    recovered by the tag lookup)."""
    job, attempt = ready.work.job, ready.work.attempt
    if attempt.id not in claim.won:
        return JobOutcome(
            job.id,
            Outcome.SKIPPED,
            f"job {job.id}: another worker is posting this attempt (or the job moved on)",
        )
    started = time.monotonic()
    if started >= claim.post_by:
        # A tag search may soon conclude this attempt started nothing: it must not start now.
        # Its next submit finds no tag and posts it then (the POSTs before it were slow).
        _recheck_soon(ctx, job.id, attempt, "not posted within its window after its claim")
        return JobOutcome(
            job.id, Outcome.WAITING, f"job {job.id}: not posted in time; it is posted later"
        )
    try:
        remote_id = ready.src.start_transfer(ready.spec)
    except (NodeUnreachable, NodeRequestRejected, NodeAuthError) as exc:
        # Positive evidence that nothing started: never sent, or refused as invalid.
        return _not_posted(ctx, job, attempt, exc)
    except NodeError as exc:
        # A timeout, a reset or a 5xx: the node may hold the transfer. Look before posting.
        pace.timed(time.monotonic() - started)
        _recheck_soon(ctx, job.id, attempt, f"POST /ops/transfers unclear: {exc}", error=str(exc))
        return JobOutcome(
            job.id,
            Outcome.WAITING,
            f"job {job.id}: POST outcome unknown; the tag will be looked up",
        )
    pace.timed(time.monotonic() - started)
    return _Posted(ready.work, remote_id, ready.src)


def _look_for_tag(
    ctx: ServiceContext, job: JobRow, attempt: AttemptRow, src: NodeClient
) -> JobOutcome | None:
    """After a POST with no answer: adopt the node's transfer, wait, or allow a re-post."""
    try:
        found, unbroken = _search_tag(src, attempt)
    except NodeError as exc:
        if exc.retryable:
            _recheck_soon(ctx, job.id, attempt, f"cannot search {src.node} for the tag: {exc}")
            return JobOutcome(
                job.id, Outcome.WAITING, f"job {job.id}: tag search failed; will try again"
            )
        return _cannot_tell(ctx, job, attempt, f"{src.node} cannot be searched for its tag ({exc})")
    if found:
        transfer = sorted(found, key=lambda t: t.started_at or ctx.now())[0]
        if transfer.status is TransferStatus.CANCELED and not job.cancel_requested:
            return _abandon_canceled(ctx, job, attempt, transfer)
        return _adopt(ctx, job, attempt, transfer, src.node)
    assert attempt.post_started_at is not None
    wait = _post_window(ctx.settings) + ctx.settings.post_settle_seconds
    settled = attempt.post_started_at + timedelta(seconds=wait)
    if ctx.now() < settled:
        _recheck_soon(ctx, job.id, attempt, "no transfer with this attempt's tag yet; waiting")
        return JobOutcome(
            job.id,
            Outcome.WAITING,
            f"job {job.id}: waiting before concluding the POST created nothing",
        )
    if not unbroken:
        return _cannot_tell(
            ctx,
            job,
            attempt,
            f"{src.node} restarted since (it refuses the change-feed cursor saved before the "
            "POST), so a transfer that started and ended meanwhile may be gone from its log",
        )
    # The node's log since the POST has no transfer with this attempt's tag: nothing started.
    if attempt.error_text is None:  # no POST of it got an unclear answer: it never went out
        if _unclaim(ctx, attempt, src.node):
            return None  # posted now, as the same attempt
        return _skipped(job.id, "moved on while its tag was searched")
    return _not_posted(
        ctx,
        job,
        attempt,
        NodeServerError(
            "the POST got no clear answer and the node holds no transfer with its tag",
            node=src.node,
            operation="start_transfer",
        ),
    )


def _unclaim(ctx: ServiceContext, attempt: AttemptRow, node: str) -> bool:
    """Clear the mark of an attempt whose POST never reached the node (its worker died or ran
    out of its window first), so that this submit posts it: a compare-and-set on the mark read."""
    with ctx.unit_of_work() as work:
        cleared = work.session.execute(
            update(AttemptRow)
            .where(
                AttemptRow.id == attempt.id,
                AttemptRow.post_started_at == attempt.post_started_at,
                AttemptRow.remote_id.is_(None),
                AttemptRow.status == AttemptState.POSTING,
            )
            .values(post_started_at=None, status=AttemptState.CREATED, feed_token_at_post=None)
            .execution_options(synchronize_session=False)
        )
        if rowcount(cleared) != 1:
            work.rollback()
            return False
        note_attempt(
            work,
            attempt,
            f"no transfer with this attempt's tag on {node}: its POST never went out; posting it",
            now=ctx.now(),
        )
        work.commit()
    set_committed_value(attempt, "post_started_at", None)
    set_committed_value(attempt, "status", AttemptState.CREATED)
    set_committed_value(attempt, "feed_token_at_post", None)
    return True


def _search_tag(src: NodeClient, attempt: AttemptRow) -> tuple[list[TransferSnapshot], bool]:
    """The attempt's transfers on the node that runs it, and whether the search covered the
    node's whole log since the POST: searched from the cursor saved when the POST was claimed;
    a node that refuses it has restarted since, and whatever ended before that may be gone from
    its log."""
    if attempt.feed_token_at_post is not None:
        try:
            return src.find_transfers_by_tag(
                TAG_KEY, attempt.id, since=attempt.feed_token_at_post
            ), True
        except InvalidIterationToken:
            return src.find_transfers_by_tag(TAG_KEY, attempt.id), False
    # No cursor was saved yet (the node was never polled): its whole log is all there is.
    return src.find_transfers_by_tag(TAG_KEY, attempt.id), True


def _cannot_tell(ctx: ServiceContext, job: JobRow, attempt: AttemptRow, why: str) -> JobOutcome:
    """Nothing can tell whether the POST started a transfer, so a re-post could duplicate it:
    a person decides."""
    with ctx.unit_of_work() as work:
        move(
            work,
            job.id,
            JobState.SUBMITTING,
            JobState.NEEDS_ATTENTION,
            f"cannot tell whether attempt {attempt.number} started: {why}",
            at=ctx.now(),
            values={
                "reason": f"the POST of attempt {attempt.id} had no clear answer and {why}; "
                "check the node, then retry",
                "next_attempt_at": None,
            },
        )
        work.commit()
    return JobOutcome(job.id, Outcome.NEEDS_ATTENTION, f"job {job.id} needs attention: {why}")


def _adopt(
    ctx: ServiceContext, job: JobRow, attempt: AttemptRow, transfer: TransferSnapshot, node: str
) -> JobOutcome:
    with ctx.unit_of_work() as work:
        note_attempt(
            work,
            attempt,
            f"found transfer {transfer.remote_id} by its tag; adopted it (no second POST)",
            now=ctx.now(),
        )
        work.commit()
    return _record_posted(ctx, job, attempt, transfer.remote_id, None, transfer, node=node)


def _abandon_canceled(
    ctx: ServiceContext, job: JobRow, attempt: AttemptRow, transfer: TransferSnapshot
) -> JobOutcome:
    """Our own clean-up canceled this attempt's transfer: make a new attempt."""
    now = ctx.now()
    with ctx.unit_of_work() as work:
        row = work.session.get(AttemptRow, attempt.id)
        if row is not None:
            row.remote_id = transfer.remote_id
            row.status = AttemptState.ABANDONED
            row.ended_at = now
        move(
            work,
            job.id,
            JobState.SUBMITTING,
            JobState.RETRY_WAIT,
            f"transfer {transfer.remote_id} of attempt {attempt.number} was canceled before "
            "it was recorded; a new attempt follows",
            at=now,
            values={"next_attempt_at": now},
        )
        work.commit()
    return JobOutcome(job.id, Outcome.RETRYING, f"job {job.id}: attempt abandoned; retrying")


# Built once: a statement run for every POST costs less to bind than to build. On the tables,
# not the ORM classes: no ORM layer runs for it (0.19 against 0.31 ms of CPU per POST).
_ATTEMPTS = cast(Table, AttemptRow.__table__)
_JOBS = cast(Table, JobRow.__table__)
_CURSORS = cast(Table, NodeCursorRow.__table__)
_MARK_POSTING = (
    update(_ATTEMPTS)
    .where(
        _ATTEMPTS.c.id.in_(bindparam("b_attempts", expanding=True)),
        _ATTEMPTS.c.post_started_at.is_(None),
        _ATTEMPTS.c.remote_id.is_(None),
        _ATTEMPTS.c.status != AttemptState.ABANDONED,
        select(_JOBS.c.id)
        .where(_JOBS.c.id == _ATTEMPTS.c.job_id, _JOBS.c.state == JobState.SUBMITTING)
        .exists(),
    )
    .values(
        post_started_at=bindparam("b_now"),
        status=AttemptState.POSTING,
        feed_token_at_post=(  # the runner's saved feed position: a tag search starts there
            select(_CURSORS.c.iteration_token)
            .where(_CURSORS.c.node_id == _ATTEMPTS.c.source_node_id)
            .scalar_subquery()
        ),
    )
    .returning(_ATTEMPTS.c.id)
)


def _mark_posting(ctx: ServiceContext, attempt_ids: list[str], window: float) -> _Claim:
    """Claim the right to POST these attempts: a compare-and-set, so only one worker ever
    posts each; one statement and one commit for them all.

    A worker that stalled past its lease may find another worker took a job over; whichever
    marks the attempt first posts it, the other skips it. The jobs must still be SUBMITTING
    (their leases are kept by the batch, renewed before each node call). What was won must be
    posted within ``window`` of now, by this process's clock.
    """
    post_by = time.monotonic() + window  # read before the mark's time: never later than it
    with ctx.sessions() as session:
        won = frozenset(
            session.scalars(_MARK_POSTING, {"b_attempts": attempt_ids, "b_now": ctx.now()})
        )
        session.commit()
    return _Claim(won, post_by)


def _recheck_soon(
    ctx: ServiceContext, job_id: str, attempt: AttemptRow, why: str, *, error: str | None = None
) -> None:
    """Look again in 5 s; an unclear POST's ``error`` stays on the attempt, so that a search
    that finds nothing then counts a failure instead of posting the attempt again."""
    now = ctx.now()
    with ctx.unit_of_work() as work:
        work.session.execute(
            update(JobRow)
            .where(JobRow.id == job_id, JobRow.state == JobState.SUBMITTING)
            .values(next_attempt_at=now + timedelta(seconds=5))
        )
        if error is not None:
            work.session.execute(
                update(AttemptRow)
                .where(AttemptRow.id == attempt.id, AttemptRow.remote_id.is_(None))
                .values(error_text=error)
            )
        note_attempt(work, attempt, why, now=now)
        work.commit()


def _not_posted(
    ctx: ServiceContext, job: JobRow, attempt: AttemptRow, exc: NodeError
) -> JobOutcome:
    """The node answered and created nothing: back off and retry, or fail for good."""
    if isinstance(exc, NodeAuthError) and (text := disable_refusing_node(ctx, job, attempt, exc)):
        return JobOutcome(job.id, Outcome.RETRYING, text)
    now = ctx.now()
    failures = job.submit_failures + 1
    permanent = isinstance(exc, TransferSetupError) or not exc.retryable
    with ctx.unit_of_work() as work:
        abandoned = work.session.execute(
            update(AttemptRow)
            .where(AttemptRow.id == attempt.id, AttemptRow.remote_id.is_(None))
            .values(status=AttemptState.ABANDONED, ended_at=now, error_text=str(exc))
        )
        if rowcount(abandoned) != 1:  # the transfer was recorded meanwhile: keep it
            work.rollback()
            return JobOutcome(
                job.id,
                Outcome.SKIPPED,
                f"job {job.id}: its transfer was recorded by another worker",
            )
        if isinstance(exc, NodeConfigurationError):
            # The node's registry entry (its CA bundle) is wrong: a person must change it.
            move(
                work,
                job.id,
                JobState.SUBMITTING,
                JobState.NEEDS_ATTENTION,
                f"submission stopped: {exc}",
                at=now,
                values={"reason": str(exc), "next_attempt_at": None, "submit_failures": failures},
            )
            outcome = JobOutcome(job.id, Outcome.NEEDS_ATTENTION, f"job {job.id}: {exc}")
        elif permanent or failures >= ctx.settings.max_submit_failures:
            move(
                work,
                job.id,
                JobState.SUBMITTING,
                JobState.FAILED,
                f"submission failed: {exc}",
                at=now,
                values={"reason": str(exc), "submit_failures": failures},
            )
            outcome = JobOutcome(job.id, Outcome.FAILED, f"job {job.id} failed: {exc}")
        else:
            move(
                work,
                job.id,
                JobState.SUBMITTING,
                JobState.RETRY_WAIT,
                f"submission failed, will retry: {exc}",
                at=now,
                values={
                    "next_attempt_at": now + retry_delay(ctx.settings, failures),
                    "submit_failures": failures,
                    "reason": str(exc),
                },
            )
            outcome = JobOutcome(
                job.id, Outcome.RETRYING, f"job {job.id}: submission failed, retrying later: {exc}"
            )
        work.commit()
    return outcome


def _record_posted(
    ctx: ServiceContext,
    job: JobRow,
    attempt: AttemptRow,
    remote_id: str,
    src: NodeClient | None,
    snapshot: TransferSnapshot | None = None,
    *,
    node: str,
) -> JobOutcome:
    """Store the remote id and move SUBMITTING → SUBMITTED; cancel the transfer if we can't."""
    for delay in (0.0, 1.0, 2.0, 4.0, 8.0, 15.0):  # ~30 s of database outage
        time.sleep(delay)
        try:
            return _store_remote_id(ctx, job, attempt, remote_id, snapshot, node)
        except OperationalError as exc:
            log.warning("cannot record transfer %s yet: %s", remote_id, type(exc).__name__)
    if src is not None:
        try:
            src.cancel_transfer(remote_id)
            log.error("canceled transfer %s: its id could not be recorded", remote_id)
        except NodeError as exc:
            log.error("transfer %s is unrecorded and could not be canceled: %s", remote_id, exc)
    raise RuntimeError(f"could not record transfer {remote_id} of job {job.id}")


def _record_posts(by_attempt: Mapping[str, str], now: datetime) -> Update:
    """Record each attempt's transfer id and when it was posted. A poll that read the transfer
    first has matched it by its tag (same id) and moved it on: it keeps its status."""
    unmatched = AttemptRow.remote_id.is_(None)
    return (
        update(AttemptRow)
        .where(AttemptRow.id.in_(list(by_attempt)))
        .values(
            remote_id=func.coalesce(AttemptRow.remote_id, case(by_attempt, value=AttemptRow.id)),
            status=case((unmatched, AttemptState.WAITING), else_=AttemptRow.status),
            submitted_at=func.coalesce(AttemptRow.submitted_at, now),
        )
        .execution_options(synchronize_session=False)
    )


def _store_remote_id(
    ctx: ServiceContext,
    job: JobRow,
    attempt: AttemptRow,
    remote_id: str,
    snapshot: TransferSnapshot | None,
    node: str,
) -> JobOutcome:
    now = ctx.now()
    with ctx.unit_of_work() as work:
        session = work.session
        session.execute(_record_posts({attempt.id: remote_id}, now))
        message = f"transfer {remote_id} started on {node} (attempt {attempt.number})"
        moved = move_many(
            work,
            {job.id: message},
            JobState.SUBMITTING,
            JobState.SUBMITTED,
            at=now,
            values={"next_attempt_at": None, "reason": None, "waiting_reason": None},
            returning=(JobRow.cancel_requested,),
        ).get(job.id)
        if snapshot is not None:
            row = session.get(AttemptRow, attempt.id)
            if row is not None:
                apply_snapshot(work, row, snapshot, now=now, settings=ctx.settings)
        cancel = (
            moved.cancel_requested
            if moved is not None
            else session.scalar(select(JobRow.cancel_requested).where(JobRow.id == job.id))
        )
        work.commit()
    if cancel:
        try:
            ctx.clients.get(attempt.source_node_id).cancel_transfer(remote_id)
        except NodeError as exc:
            log.warning("cancel of %s for job %s failed: %s", remote_id, job.id, exc)
    transfer = f"{remote_id} on {node} (attempt {attempt.number})"
    if moved is None:  # the poller saw the transfer first and moved the job on
        log.info(
            "job %s: node transfer %s recorded; the job had already moved on", job.id, transfer
        )
        return JobOutcome(
            job.id,
            Outcome.SKIPPED,
            f"job {job.id}: node transfer {transfer} recorded; the job had already moved on",
        )
    log.info("job %s: submitted as node transfer %s", job.id, transfer)
    return JobOutcome(
        job.id, Outcome.SUBMITTED, f"job {job.id}: submitted as node transfer {transfer}"
    )


def _record_all_posted(ctx: ServiceContext, posted: list[_Posted]) -> list[JobOutcome]:
    """Store the remote ids of POSTs sent back to back, in one transaction; as
    ``_record_posted`` does for one, cancel the transfers if the database stays away."""
    if not posted:
        return []
    for delay in (0.0, 1.0, 2.0, 4.0, 8.0, 15.0):  # ~30 s of database outage
        time.sleep(delay)
        try:
            return _store_remote_ids(ctx, posted)
        except OperationalError as exc:
            log.warning("cannot record %d transfer(s) yet: %s", len(posted), type(exc).__name__)
    for p in posted:
        try:
            p.src.cancel_transfer(p.remote_id)
            log.error("canceled transfer %s: its id could not be recorded", p.remote_id)
        except NodeError as exc:
            log.error("transfer %s is unrecorded and could not be canceled: %s", p.remote_id, exc)
    ids = ", ".join(p.remote_id for p in posted)
    raise RuntimeError(f"could not record transfers {ids} of {len(posted)} job(s)")


def _store_remote_ids(ctx: ServiceContext, posted: list[_Posted]) -> list[JobOutcome]:
    """One UPDATE of the attempts, one move of their jobs to SUBMITTED, one INSERT of events."""
    now = ctx.now()
    by_attempt = {p.work.attempt.id: p.remote_id for p in posted}
    messages = {
        p.work.job.id: (
            f"transfer {p.remote_id} started on {p.src.node} (attempt {p.work.attempt.number})"
        )
        for p in posted
    }
    with ctx.unit_of_work() as work:
        # Locked in id order first, as a poll's page locks the attempts it reads: a poll that
        # read some of these transfers first then waits for this record, or this record for
        # it, instead of a deadlock (the UPDATE alone locks them in the table's order).
        work.session.execute(
            select(AttemptRow.id)
            .where(AttemptRow.id.in_(list(by_attempt)))
            .order_by(AttemptRow.id)
            .with_for_update()
        )
        work.session.execute(_record_posts(by_attempt, now))
        moved = move_many(
            work,
            messages,
            JobState.SUBMITTING,
            JobState.SUBMITTED,
            at=now,
            values={"next_attempt_at": None, "reason": None, "waiting_reason": None},
            returning=(JobRow.cancel_requested,),
        )
        cancel = {job_id for job_id, row in moved.items() if row.cancel_requested}
        if len(moved) < len(messages):  # moved on: a cancel asked meanwhile is still ours to send
            others = [job_id for job_id in messages if job_id not in moved]
            cancel.update(
                work.session.scalars(
                    select(JobRow.id).where(JobRow.id.in_(others), JobRow.cancel_requested)
                )
            )
        work.commit()
    return [_recorded(p, moved, cancel) for p in posted]


def _recorded(p: _Posted, moved: Mapping[str, object], cancel: set[str]) -> JobOutcome:
    """One recorded POST: the cancel asked meanwhile, its log line (in the job's context, as
    each POST's own lines are) and its outcome."""
    job_id, transfer = p.work.job.id, f"{p.remote_id} on {p.src.node}"
    transfer += f" (attempt {p.work.attempt.number})"
    with log_context(job_id=job_id, node=p.src.node, attempt=p.work.attempt.number):
        if job_id in cancel:
            try:
                p.src.cancel_transfer(p.remote_id)
            except NodeError as exc:
                log.warning("cancel of %s for job %s failed: %s", p.remote_id, job_id, exc)
        if job_id not in moved:  # the poller saw the transfer first and moved the job on
            log.info(
                "job %s: node transfer %s recorded; the job had already moved on", job_id, transfer
            )
            text = f"job {job_id}: node transfer {transfer} recorded; the job had already moved on"
            return JobOutcome(job_id, Outcome.SKIPPED, text)
        log.info("job %s: submitted as node transfer %s", job_id, transfer)
        return JobOutcome(
            job_id, Outcome.SUBMITTED, f"job {job_id}: submitted as node transfer {transfer}"
        )
