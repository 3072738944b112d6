"""The finisher: what a node says about a transfer decides its attempt and its job.

It records progress, and on an end state moves the job to COMPLETED, FAILED, CANCELED,
NEEDS_ATTENTION or RETRY_WAIT (with the back-off of the next attempt). The poller calls it
for every transfer it reads; the submitter when it adopts a transfer found by its tag.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from orchestrator.db.tables import AttemptRow, JobRow
from orchestrator.domain import units
from orchestrator.domain.states import (
    MAY_HOLD_TRANSFER,
    NODE_ENDED,
    AttemptState,
    JobState,
    can_move,
    state_for_transfer,
)
from orchestrator.domain.transfers import TransferSnapshot, TransferStatus
from orchestrator.services.context import UnitOfWork
from orchestrator.services.conveyor.checksums import await_files, reads_checksums
from orchestrator.services.conveyor.completions import PageCompletions
from orchestrator.services.conveyor.deadlines import follow_running, note_end
from orchestrator.services.conveyor.remedies import count_end, remedy_failure
from orchestrator.services.conveyor.throughput import ThroughputTally
from orchestrator.services.conveyor.transitions import move
from orchestrator.services.events import record
from orchestrator.settings import Settings


def retry_delay(settings: Settings, attempt_number: int) -> timedelta:
    """Exponential back-off for the next attempt, capped."""
    seconds = settings.retry_backoff_seconds * (2 ** max(0, attempt_number - 1))
    return timedelta(seconds=min(seconds, settings.retry_backoff_max_seconds))


def apply_snapshot(
    work: UnitOfWork,
    attempt: AttemptRow,
    snapshot: TransferSnapshot,
    *,
    now: datetime,
    settings: Settings,
    ends: PageCompletions | None = None,
) -> JobState | None:
    """Record the snapshot on the attempt; move the job if the node's status calls for it.

    Returns the job's new state when it moved. A terminal attempt never changes again, and an
    attempt that is not the job's latest only updates itself. With ``ends``, a plain
    completion is left to it (the page writes and moves its completions together) and None is
    returned.
    """
    if snapshot.status is TransferStatus.UNKNOWN:
        return None  # an answer that settles nothing is not a sighting (node-api.md §4.2)
    if progress_only(attempt, snapshot, now, settings):
        return None  # written at most every ORCH_PROGRESS_SECONDS: no UPDATE for a byte count
    if ends is not None and ends.take(work, attempt, snapshot, now):
        return None
    attempt.last_seen_at = now
    attempt.missing_since = None
    attempt.check_after = None
    attempt.unsettled_checks = 0
    if attempt.status in NODE_ENDED:
        return None
    moved_bytes = snapshot.bytes_transferred - attempt.bytes_transferred
    moved_files = snapshot.files_completed - attempt.files_completed
    _copy(attempt, snapshot, now)
    job = work.session.get(JobRow, attempt.job_id)
    if job is not None:
        work.accumulator(ThroughputTally).add(
            now, job.id, job.source_node_id, job.destination_node_id, moved_bytes, moved_files
        )
    if job is not None and snapshot.status.is_terminal:
        count_end(work, job, snapshot, now=now)
    if job is None or job.attempt_count != attempt.number:
        return None
    job.bytes_transferred = snapshot.bytes_transferred
    if snapshot.bytes_expected or snapshot.files_expected:
        # The node's precalc wins; a node that did not precalculate shows none, or zeros
        # (hstssim, ascli's simulator), and the sizes the source check found stay.
        job.bytes_expected = snapshot.bytes_expected
        job.files_expected = snapshot.files_expected
    job.files_completed = snapshot.files_completed
    job.files_skipped = snapshot.files_skipped
    job.rate_kbps = snapshot.rate_kbps
    if not snapshot.status.is_terminal:
        follow_running(work, job, now)
    current = JobState(job.state)
    # Attempts abandoned before reaching the node (submit failures) do not use up the budget.
    transfers_tried = job.attempt_count - job.submit_failures
    attempts_left = transfers_tried < job.max_attempts
    target = state_for_transfer(snapshot, attempts_left=attempts_left)
    if target is JobState.CANCELED and current is JobState.SUBMITTING and not job.cancel_requested:
        # Canceled before we recorded it: our own clean-up after a failed DB write.
        target = JobState.RETRY_WAIT
    remedied = None
    if target in (JobState.FAILED, JobState.RETRY_WAIT) and snapshot.error is not None:
        remedied = remedy_failure(
            work, job, attempt, snapshot.error, attempts_left=attempts_left, now=now
        )
    if remedied is not None:
        target = remedied.target
    if target is None or target == current or current not in MAY_HOLD_TRANSFER:
        return None
    if not can_move(current, target):
        return None
    if target is JobState.COMPLETED and reads_checksums(job):
        await_files(work, job, attempt, now=now)  # the job ends once its files are stored
        return None
    values: dict[str, object] = {}
    message = f"node {snapshot.status}: transfer {snapshot.remote_id}"
    if snapshot.error is not None:
        values = {"error_code": snapshot.error.code, "error_text": snapshot.error.text}
        message += f" ({snapshot.error})"
    if target is JobState.COMPLETED:
        message += "; " + units.moved(
            snapshot.files_completed, snapshot.bytes_transferred, snapshot.files_skipped
        )
    if target is JobState.RETRY_WAIT and remedied is None:
        values["next_attempt_at"] = now + retry_delay(settings, attempt.number)
        message += f"; attempt {attempt.number + 1} after back-off"
    if target is JobState.FAILED:
        values["reason"] = str(snapshot.error) if snapshot.error else "the node failed it"
    if target is JobState.NEEDS_ATTENTION:
        values["reason"] = (
            "the node reported failed with no error code; check the destination "
            f"({snapshot.files_completed} file(s) completed"
            + (f" of {snapshot.files_expected} expected)" if snapshot.files_expected else ")")
        )
    if target is JobState.CANCELED and not job.cancel_requested:
        values["reason"] = "canceled on the node"
    if remedied is not None:  # the remediation table's action (domain/remediation.py)
        message += remedied.message
        values.update(remedied.values)
    moved = move(work, job.id, current, target, message, at=now, values=values)
    if moved is None:
        moved = _again_from_now(work, job.id, attempt.number, current, target, message, now, values)
    if moved is not None:
        if target.is_terminal:
            note_end(work, job, attempt, target, now)
        work.session.expire(job)
        return target
    return None


def _again_from_now(
    work: UnitOfWork,
    job_id: str,
    attempt_number: int,
    tried: JobState,
    target: JobState,
    message: str,
    now: datetime,
    values: dict[str, object],
) -> JobState | None:
    """The compare-and-set once more, from the state the job is in now.

    A submit's record (SUBMITTING → SUBMITTED) that commits after this page read the job makes
    the first one miss; the attempt has ended with this snapshot, so no later poll would move
    the job. Only while the job still waits on this attempt and may make the move.
    """
    row = work.session.execute(
        select(JobRow.state, JobRow.attempt_count).where(JobRow.id == job_id)
    ).first()
    if row is None or row.attempt_count != attempt_number:
        return None
    state = JobState(row.state)
    if state == tried or state not in MAY_HOLD_TRANSFER or not can_move(state, target):
        return None
    return move(work, job_id, state, target, message, at=now, values=values)


def progress_only(
    attempt: AttemptRow, snapshot: TransferSnapshot, now: datetime, settings: Settings
) -> bool:
    """Whether the snapshot only moves a running transfer's counters, written not long ago."""
    return (
        attempt.status == snapshot.status.value
        and not snapshot.status.is_terminal
        and snapshot.error is None
        and attempt.check_after is None
        and attempt.missing_since is None
        and attempt.last_seen_at is not None
        and (now - attempt.last_seen_at).total_seconds() < settings.progress_seconds
    )


def _copy(attempt: AttemptRow, snapshot: TransferSnapshot, now: datetime) -> None:
    attempt.remote_id = attempt.remote_id or snapshot.remote_id
    attempt.status = AttemptState.of_transfer(snapshot.status)
    attempt.bytes_transferred = snapshot.bytes_transferred
    attempt.bytes_expected = snapshot.bytes_expected
    attempt.files_completed = snapshot.files_completed
    attempt.files_skipped = snapshot.files_skipped
    attempt.files_failed = snapshot.files_failed
    attempt.files_expected = snapshot.files_expected
    attempt.rate_kbps = snapshot.rate_kbps
    attempt.started_at = attempt.started_at or snapshot.started_at
    if snapshot.error is not None:
        attempt.error_code = snapshot.error.code
        attempt.error_text = snapshot.error.text
    if snapshot.status.is_terminal:
        attempt.ended_at = snapshot.ended_at or now


def note_attempt(work: UnitOfWork, attempt: AttemptRow, message: str, *, now: datetime) -> None:
    """Add an attempt-level event to the job's log."""
    record(work.session, attempt.job_id, "attempt", message, at=now, data={"attempt": attempt.id})
