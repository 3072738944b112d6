"""Job and attempt states, their named groups, the one transition table, and how a node's
transfer status moves a job."""

from __future__ import annotations

from enum import StrEnum

from orchestrator.domain.ascp import ErrorClass
from orchestrator.domain.transfers import TransferSnapshot, TransferStatus


class JobState(StrEnum):
    """Where a job is; stored as these lowercase strings."""

    QUEUED = "queued"  # committed, waiting for admission
    ADMITTED = "admitted"  # within limits, a submit task is on its way
    SUBMITTING = "submitting"  # an attempt row exists; upload_setup / POST under way
    SUBMITTED = "submitted"  # the source node holds the transfer; not yet seen running
    RUNNING = "running"
    PAUSED = "paused"
    RETRY_WAIT = "retry_wait"  # a retryable failure; next attempt after next_attempt_at
    NEEDS_ATTENTION = "needs_attention"  # a person must look (e.g. failed with code 0)
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_terminal(self) -> bool:
        """Whether nothing but a person's retry moves the job again."""
        return self in TERMINAL_STATES

    @property
    def holds_a_transfer(self) -> bool:
        """Whether a node transfer may exist for the job's current attempt."""
        return self in MAY_HOLD_TRANSFER


# The named groups of job states: every module that needs a set of states takes it from here.
TERMINAL_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELED})
# Nothing moves these without a person: the terminal states and NEEDS_ATTENTION.
SETTLED = TERMINAL_STATES | {JobState.NEEDS_ATTENTION}
# Ended badly (alerts, schedule streaks, the dashboard's problems).
FAILED_ENDS = frozenset({JobState.FAILED, JobState.NEEDS_ATTENTION})
# No node transfer exists: a cancel needs the database alone.
BEFORE_NODE = frozenset(
    {JobState.QUEUED, JobState.ADMITTED, JobState.RETRY_WAIT, JobState.NEEDS_ATTENTION}
)
# A node transfer may exist for the current attempt: what the poller follows.
MAY_HOLD_TRANSFER = frozenset(
    {JobState.SUBMITTING, JobState.SUBMITTED, JobState.RUNNING, JobState.PAUSED}
)
# The node holds the transfer and its id is recorded: controls act through the node.
POSTED = frozenset({JobState.SUBMITTED, JobState.RUNNING, JobState.PAUSED})
# Counted against the per-node and per-link limits by the dispatcher.
HOLDS_A_SLOT = MAY_HOLD_TRANSFER | {JobState.ADMITTED}
# Admitted and not yet settled: what the dashboard lists as active.
UNDER_WAY = HOLDS_A_SLOT | {JobState.RETRY_WAIT}
# Leases its destination tree (no overlapping job is admitted): RETRY_WAIT too, since the next
# attempt resumes the partial files it left there. NEEDS_ATTENTION waits for a person and
# holds nothing, or one stuck job would stop every later run to its tree.
HOLDS_A_DESTINATION = UNDER_WAY


class AttemptState(StrEnum):
    """Where an attempt is: our own steps until the node holds it, then the node's status."""

    CREATED = "created"  # the row exists (its uuid is the transfer's tag); nothing sent yet
    POSTING = "posting"  # POST /ops/transfers was claimed: the node may hold a transfer
    ABANDONED = "abandoned"  # never became a node transfer we follow; a new attempt follows
    LOST = "lost"  # the node no longer knows the transfer
    WAITING = TransferStatus.WAITING.value
    RUNNING = TransferStatus.RUNNING.value
    PAUSED = TransferStatus.PAUSED.value
    RETRYING = TransferStatus.RETRYING.value
    COMPLETED = TransferStatus.COMPLETED.value
    FAILED = TransferStatus.FAILED.value
    CANCELED = TransferStatus.CANCELED.value

    @classmethod
    def of_transfer(cls, status: TransferStatus) -> AttemptState:
        """The attempt state a node status (never UNKNOWN) is stored as."""
        return cls(status.value)


# The node ended the attempt's transfer: no snapshot changes it again.
NODE_ENDED = frozenset({AttemptState.COMPLETED, AttemptState.FAILED, AttemptState.CANCELED})

S = JobState
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    S.QUEUED: frozenset({S.ADMITTED, S.CANCELED, S.FAILED}),
    S.ADMITTED: frozenset({S.SUBMITTING, S.QUEUED, S.CANCELED}),
    S.SUBMITTING: frozenset(
        {S.SUBMITTED, S.RUNNING, S.RETRY_WAIT, S.FAILED, S.NEEDS_ATTENTION, S.CANCELED, S.COMPLETED}
    ),
    S.SUBMITTED: frozenset(
        {S.RUNNING, S.PAUSED, S.RETRY_WAIT, S.NEEDS_ATTENTION, S.COMPLETED, S.FAILED, S.CANCELED}
    ),
    S.RUNNING: frozenset(
        {S.PAUSED, S.RETRY_WAIT, S.NEEDS_ATTENTION, S.COMPLETED, S.FAILED, S.CANCELED}
    ),
    S.PAUSED: frozenset(
        {S.RUNNING, S.RETRY_WAIT, S.NEEDS_ATTENTION, S.COMPLETED, S.FAILED, S.CANCELED}
    ),
    S.RETRY_WAIT: frozenset({S.QUEUED, S.CANCELED, S.FAILED}),
    S.NEEDS_ATTENTION: frozenset({S.QUEUED, S.COMPLETED, S.FAILED, S.CANCELED}),
    S.FAILED: frozenset({S.QUEUED}),  # a person's retry
    S.COMPLETED: frozenset(),
    S.CANCELED: frozenset(),
}


def can_move(current: JobState, target: JobState) -> bool:
    """Whether the table allows current → target (staying put is always allowed)."""
    return current == target or target in TRANSITIONS[current]


def state_for_transfer(snapshot: TransferSnapshot, *, attempts_left: bool) -> JobState | None:
    """The job state a node transfer status calls for; None when the job should not move.

    ``partially_completed`` is still running (the node retries); ``failed`` with code 0 needs a
    person (node-api.md §5.4); a retryable failure waits for a new attempt if any are left.
    """
    status = snapshot.status
    if status in (TransferStatus.WAITING, TransferStatus.UNKNOWN):
        return None
    if status in (TransferStatus.RUNNING, TransferStatus.RETRYING):
        return JobState.RUNNING
    if status is TransferStatus.PAUSED:
        return JobState.PAUSED
    if status is TransferStatus.COMPLETED:
        return JobState.COMPLETED
    if status is TransferStatus.CANCELED:
        return JobState.CANCELED
    failure = snapshot.error
    if failure is None or failure.error_class is ErrorClass.UNEXPLAINED:
        return JobState.NEEDS_ATTENTION
    if failure.retryable and attempts_left:
        return JobState.RETRY_WAIT
    return JobState.FAILED
