"""A poll page's plain completions, moved together: one UPDATE of their jobs, one INSERT of
their events, instead of a compare-and-set and an event per transfer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from orchestrator.db.tables import AttemptRow, JobRow
from orchestrator.domain.states import JobState
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
        leaving: dict[JobState, dict[str, str]] = {}
        for job_id, end in self._ends.items():
            leaving.setdefault(JobState(end.job.state), {})[job_id] = end.message
        done = []
        for state, messages in leaving.items():
            for job_id in move_many(work, messages, state, JobState.COMPLETED, at=now):
                end = self._ends[job_id]
                note_end(work, end.job, end.attempt, JobState.COMPLETED, now)
                work.session.expire(end.job)
                done.append(end.attempt)
        self._ends.clear()
        return done
