"""A poll page's plain completions, moved together: one UPDATE of their jobs, one INSERT of
their events, instead of a compare-and-set and an event per transfer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from orchestrator.db.tables import AttemptRow, JobRow
from orchestrator.domain.states import MAY_HOLD_TRANSFER, JobState
from orchestrator.services.context import UnitOfWork
from orchestrator.services.conveyor.deadlines import note_end
from orchestrator.services.conveyor.transitions import move_many


@dataclass(frozen=True)
class _Ending:
    job: JobRow
    attempt: AttemptRow
    message: str


class PageCompletions:
    """Jobs a page completes with nothing else to write (no error, no files to collect), held
    until the page's transfers are applied, then moved in one statement per state they leave.

    Each move is still a compare-and-set: a job another process moved meanwhile stays out.
    """

    def __init__(self) -> None:
        self._ends: dict[str, _Ending] = {}

    def add(self, job: JobRow, attempt: AttemptRow, message: str) -> None:
        """Complete this job with the page (its progress is already on the ORM row)."""
        self._ends[job.id] = _Ending(job, attempt, message)

    def move(self, work: UnitOfWork, now: datetime) -> list[AttemptRow]:
        """Move the held jobs to COMPLETED; the attempts of those that moved."""
        states = {job_id: JobState(end.job.state) for job_id, end in self._ends.items()}
        done = []
        for _ in range(len(MAY_HOLD_TRANSFER)):  # each retry finds the job one state further on
            leaving: dict[JobState, dict[str, str]] = {}
            for job_id, state in states.items():
                leaving.setdefault(state, {})[job_id] = self._ends[job_id].message
            for state, messages in leaving.items():
                for job_id in move_many(work, messages, state, JobState.COMPLETED, at=now):
                    end = self._ends[job_id]
                    note_end(work, end.job, end.attempt, JobState.COMPLETED, now)
                    work.session.expire(end.job)
                    done.append(end.attempt)
                    del states[job_id]
            if not states:
                break
            states = self._moved_meanwhile(work, list(states))
        self._ends.clear()
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
