"""A poll page's plain completions, written together: one UPDATE of their attempts, one
compare-and-set of their jobs that writes their counters too, and one INSERT of their events,
instead of ORM rows flushed and a compare-and-set and an event per transfer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm.attributes import instance_dict

from orchestrator.db.bulk import swap_rows, update_rows
from orchestrator.db.tables import AttemptRow, JobRow
from orchestrator.domain import units
from orchestrator.domain.states import (
    MAY_HOLD_TRANSFER,
    NODE_ENDED,
    AttemptState,
    JobState,
    can_move,
)
from orchestrator.domain.transfers import TransferSnapshot, TransferStatus
from orchestrator.services.context import UnitOfWork
from orchestrator.services.conveyor.checksums import reads_checksums
from orchestrator.services.conveyor.deadlines import note_end
from orchestrator.services.conveyor.remedies import count_end
from orchestrator.services.conveyor.throughput import ThroughputTally
from orchestrator.services.conveyor.transitions import record_moves

# What a completed transfer writes on its attempt (finisher's sighting and _copy) and on its job.
ATTEMPT_COLUMNS = (
    "remote_id",
    "status",
    "bytes_transferred",
    "bytes_expected",
    "files_completed",
    "files_skipped",
    "files_failed",
    "files_expected",
    "rate_kbps",
    "started_at",
    "ended_at",
)
_SEEN = ("last_seen_at", "missing_since", "check_after", "unsettled_checks")  # one value for all
_MOVED = ("state", "state_changed_at", "updated_at", "finished_at")  # move_many's COMPLETED
JOB_COLUMNS = (
    "bytes_transferred",
    "bytes_expected",
    "files_expected",
    "files_completed",
    "files_skipped",
    "rate_kbps",
)


_ATTEMPTS = cast(Table, AttemptRow.__table__)
_JOBS = cast(Table, JobRow.__table__)


@dataclass(frozen=True)
class _Ending:
    job: JobRow
    attempt: AttemptRow
    message: str
    attempt_row: tuple[Any, ...]  # the attempt's id, then ATTEMPT_COLUMNS
    job_row: tuple[Any, ...]  # the job's id, then JOB_COLUMNS


class PageCompletions:
    """Jobs a page completes with nothing else to write (no error, no files to collect), held
    until the page's transfers are applied, then written and moved in one statement each.

    Each move is still a compare-and-set: a job another process moved meanwhile stays out.
    """

    def __init__(self) -> None:
        self._ends: dict[str, _Ending] = {}

    def take(
        self, work: UnitOfWork, attempt: AttemptRow, snapshot: TransferSnapshot, now: datetime
    ) -> bool:
        """Hold this snapshot if it plainly completes its attempt's job (the finisher's rules:
        the job's latest attempt, a state it may complete from, no checksums to collect); its
        throughput and its link's breaker are counted now. False: the finisher applies it."""
        if (
            snapshot.status is not TransferStatus.COMPLETED
            or snapshot.error is not None
            or attempt.status in NODE_ENDED
        ):
            return False
        job = work.session.get(JobRow, attempt.job_id)
        if job is None or job.attempt_count != attempt.number:
            return False
        current = JobState(job.state)
        if current not in MAY_HOLD_TRANSFER or not can_move(current, JobState.COMPLETED):
            return False
        if reads_checksums(job):
            return False
        if job.id in self._ends:
            return True  # the page named it twice: the first sighting ended it
        work.accumulator(ThroughputTally).add(
            now,
            job.id,
            job.source_node_id,
            job.destination_node_id,
            snapshot.bytes_transferred - attempt.bytes_transferred,
            snapshot.files_completed - attempt.files_completed,
        )
        count_end(work, job, snapshot, now=now)
        sized = bool(snapshot.bytes_expected or snapshot.files_expected)  # as the finisher
        message = f"node {snapshot.status}: transfer {snapshot.remote_id}; " + units.moved(
            snapshot.files_completed, snapshot.bytes_transferred, snapshot.files_skipped
        )
        attempt_row = (
            attempt.id,
            attempt.remote_id or snapshot.remote_id,
            AttemptState.of_transfer(snapshot.status).value,
            snapshot.bytes_transferred,
            snapshot.bytes_expected,
            snapshot.files_completed,
            snapshot.files_skipped,
            snapshot.files_failed,
            snapshot.files_expected,
            snapshot.rate_kbps,
            attempt.started_at or snapshot.started_at,
            snapshot.ended_at or now,
        )
        job_row = (
            job.id,
            snapshot.bytes_transferred,
            snapshot.bytes_expected if sized else job.bytes_expected,
            snapshot.files_expected if sized else job.files_expected,
            snapshot.files_completed,
            snapshot.files_skipped,
            snapshot.rate_kbps,
        )
        self._ends[job.id] = _Ending(job, attempt, message, attempt_row, job_row)
        return True

    def move(self, work: UnitOfWork, now: datetime) -> list[AttemptRow]:
        """Write the held attempts, move their jobs to COMPLETED with their counters; the
        attempts of those that moved."""
        if not self._ends:
            return []
        ends = list(self._ends.values())
        seen = dict(zip(_SEEN, (now, None, None, 0), strict=True))
        update_rows(
            work.session, _ATTEMPTS, "id", ATTEMPT_COLUMNS, [e.attempt_row for e in ends], seen
        )
        for end in ends:  # the session's rows say what the database now holds
            _written(end.attempt, ATTEMPT_COLUMNS, end.attempt_row)
            instance_dict(end.attempt).update(seen)
        states = {job_id: JobState(end.job.state) for job_id, end in self._ends.items()}
        done = []
        for _ in range(len(MAY_HOLD_TRANSFER)):  # each retry finds the job one state further on
            done += self._complete(work, states, now)
            if not states:
                break
            states = self._moved_meanwhile(work, list(states))
        left = [e for e in ends if JobState(e.job.state) is not JobState.COMPLETED]
        # Jobs that another process ended meanwhile still take the transfer's counters.
        update_rows(work.session, _JOBS, "id", JOB_COLUMNS, [e.job_row for e in left])
        for end in left:
            _written(end.job, JOB_COLUMNS, end.job_row)
        self._ends.clear()
        return done

    def _complete(
        self, work: UnitOfWork, states: dict[str, JobState], now: datetime
    ) -> list[AttemptRow]:
        """One compare-and-set of the jobs still in ``states`` (each from its own state) that
        also writes their counters: one row version per job. Those moved leave ``states``."""
        rows = [(j, state, *self._ends[j].job_row[1:]) for j, state in states.items()]
        moved = dict(
            swap_rows(
                work.session,
                _JOBS,
                "id",
                "state",
                JOB_COLUMNS,
                rows,
                {"state": JobState.COMPLETED, **dict.fromkeys(_MOVED[1:], now)},
                returning=("parent_id",),
            )
        )
        order = [job_id for job_id in states if job_id in moved]  # the page's order
        record_moves(
            work,
            [(j, states[j], self._ends[j].message, moved[j]) for j in order],
            JobState.COMPLETED,
            now,
        )
        done = []
        for job_id in order:
            end = self._ends[job_id]
            _written(end.job, JOB_COLUMNS, end.job_row)
            _written(end.job, _MOVED, (job_id, JobState.COMPLETED, now, now, now))
            note_end(work, end.job, end.attempt, JobState.COMPLETED, now)
            done.append(end.attempt)
            del states[job_id]
        return done

    def _moved_meanwhile(self, work: UnitOfWork, job_ids: list[str]) -> dict[str, JobState]:
        """The jobs the compare-and-set missed that still wait for this transfer's end, by
        the state they are in now.

        A submit's record (SUBMITTING → SUBMITTED) that commits after the page read its jobs
        makes the page's compare-and-set miss; the attempt has ended with this page, so no
        later poll would move the job: it is moved from the state it has now.
        """
        rows = work.session.execute(
            select(JobRow.id, JobRow.state, JobRow.attempt_count).where(JobRow.id.in_(job_ids))
        ).all()
        return {
            job_id: JobState(state)
            for job_id, state, attempt_count in rows
            if JobState(state) in MAY_HOLD_TRANSFER
            and attempt_count == self._ends[job_id].attempt.number
        }


def _written(row: Any, columns: tuple[str, ...], values: tuple[Any, ...]) -> None:
    """A loaded row's attributes set to what was just written (its instance dict, as a load
    would): the session holds what the database holds, and nothing is left to flush."""
    instance_dict(row).update(zip(columns, values[1:], strict=True))
