"""Checksum reports: a completed transfer whose job asked for file checksums has its files read
from the node that ran it (the source, or the destination for a pull) and stored, and only then
does the job end (COMPLETED, or NEEDS_ATTENTION naming a file without a checksum when the job
requires them).

The finisher never calls the node from the poll loop: it leaves the job where it is (its
attempt says completed) and sends ``collect_files``; the sweeper re-sends it for such jobs
whose message was lost. The task is a compare-and-set on the job's state, files and end in
one transaction, so running it twice stores the files once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orchestrator.db.tables import AttemptRow, JobFileRow, JobRow
from orchestrator.domain import units
from orchestrator.domain.checksums import unchecked_files
from orchestrator.domain.jobs import TransferOptions
from orchestrator.domain.states import MAY_HOLD_TRANSFER, AttemptState, JobState
from orchestrator.domain.transfers import TransferFile
from orchestrator.errors import NodeError, NodeNotFound
from orchestrator.logsetup import redact
from orchestrator.services.context import ServiceContext, UnitOfWork
from orchestrator.services.conveyor.deadlines import note_end
from orchestrator.services.conveyor.transitions import move
from orchestrator.services.events import record
from orchestrator.taskqueue import TaskName

log = logging.getLogger(__name__)

BATCH = 500


def reads_checksums(job: JobRow) -> bool:
    """Whether a job's files and checksums are stored before it completes."""
    return TransferOptions.model_validate(job.options).reads_checksums


def await_files(work: UnitOfWork, job: JobRow, attempt: AttemptRow, *, now: datetime) -> None:
    """Hold a completed job until its files are stored: note it, and send the reader."""
    record(
        work.session,
        job.id,
        "attempt",
        f"transfer {attempt.remote_id} completed: reading its files and checksums",
        at=now,
        data={"attempt": attempt.id},
    )
    job_id = job.id
    work.after_commit(f"collect:{job_id}", lambda: work.ctx.enqueue(TaskName.COLLECT_FILES, job_id))


@dataclass(frozen=True)
class _Held:
    """A job held for its files, as read before calling the node."""

    state: JobState
    attempt_id: str
    attempt_number: int
    runner_id: int
    remote_id: str
    options: TransferOptions
    files_completed: int
    bytes_transferred: int
    files_skipped: int


def collect_files(ctx: ServiceContext, job_id: str) -> str:
    """Read a held job's files from the node that ran its transfer, store them, and end
    the job."""
    with ctx.sessions() as session:
        held = _held(session.get(JobRow, job_id), session)
    if held is None:
        return f"job {job_id}: not waiting for its files"
    lost = None
    files: list[TransferFile] = []
    try:
        files = ctx.clients.get(held.runner_id).transfer_files(held.remote_id)
    except NodeNotFound as exc:
        # The node no longer keeps the record (its activity retention): asking again is useless.
        lost = redact(f"the node no longer lists the transfer's files: {exc}")
    except NodeError as exc:
        log.warning("job %s: files not read yet (the sweeper asks again): %s", job_id, exc)
        return f"job {job_id}: {redact(str(exc))}"
    return _end(ctx, job_id, held, files, lost)


def _held(job: JobRow | None, session: Session) -> _Held | None:
    """The job and its completed attempt, if the job is held waiting for its files."""
    if job is None or JobState(job.state) not in MAY_HOLD_TRANSFER:
        return None
    options = TransferOptions.model_validate(job.options)
    if not options.reads_checksums:
        return None
    attempt = session.scalar(
        select(AttemptRow).where(
            AttemptRow.job_id == job.id, AttemptRow.number == job.attempt_count
        )
    )
    if attempt is None or attempt.status != AttemptState.COMPLETED or attempt.remote_id is None:
        return None
    return _Held(
        state=JobState(job.state),
        attempt_id=attempt.id,
        attempt_number=attempt.number,
        runner_id=attempt.source_node_id,  # the node that ran it (the destination for a pull)
        remote_id=attempt.remote_id,
        options=options,
        files_completed=attempt.files_completed,
        bytes_transferred=attempt.bytes_transferred,
        files_skipped=attempt.files_skipped,
    )


def _end(
    ctx: ServiceContext, job_id: str, held: _Held, files: list[TransferFile], lost: str | None
) -> str:
    """Store the files and end the job, if it is still where it was when they were read."""
    problem = _problem(held.options, files, lost)
    now = ctx.now()
    target = JobState.COMPLETED if problem is None else JobState.NEEDS_ATTENTION
    summary = f"{units.files(len(files))} stored with their checksums" if files else "no files"
    if problem is not None:
        message = f"{summary}; {problem}"
    else:
        moved = units.moved(held.files_completed, held.bytes_transferred, held.files_skipped)
        message = f"{summary}; {moved}" + (f"; {lost}" if lost else "")
    values: dict[str, object] = {} if problem is None else {"reason": problem}
    with ctx.unit_of_work() as work:
        # The files first: the move wakes a fan-out's parent, which compares its parts' files.
        if files:
            try:
                work.session.execute(
                    insert(JobFileRow),
                    [
                        {
                            "job_id": job_id,
                            "attempt_id": held.attempt_id,
                            "attempt_number": held.attempt_number,
                            "position": position,
                            "path": f.path,
                            "size": f.size,
                            "status": f.status,
                            "checksum_type": f.checksum_type,
                            "checksum": f.checksum,
                        }
                        for position, f in enumerate(files)
                    ],
                )
            except IntegrityError:
                work.rollback()
                return f"job {job_id}: its files were stored by another run"
        if move(work, job_id, held.state, target, message, at=now, values=values) is None:
            work.rollback()
            return f"job {job_id}: moved on meanwhile, files not stored"
        job, attempt = (
            work.session.get(JobRow, job_id),
            work.session.get(AttemptRow, held.attempt_id),
        )
        if job is not None and attempt is not None:
            note_end(work, job, attempt, target, now)  # the link's rate, a missed deadline
        work.commit()
    return f"job {job_id}: {target}; {summary}"


def _problem(options: TransferOptions, files: list[TransferFile], lost: str | None) -> str | None:
    """Why the job needs a person (None: it completes); ``lost`` says why no files were read."""
    if not options.require_checksums:
        return None
    return lost or _missing(files)


def _missing(files: list[TransferFile]) -> str | None:
    """Why required checksums are not all there, naming the first file; None if they are."""
    unchecked = unchecked_files(files)
    if not unchecked:
        return None
    more = f" (and {len(unchecked) - 1} more file(s))" if len(unchecked) > 1 else ""
    return f"checksums are required, and the node reported none for {unchecked[0]}{more}"


def held_for_files(ctx: ServiceContext, *, older_than: timedelta) -> list[str]:
    """Jobs whose completed transfer waits for its files longer than ``older_than``."""
    stale = ctx.now() - older_than
    with ctx.sessions() as session:
        rows = session.execute(
            select(JobRow.id, JobRow.options)
            .join(
                AttemptRow,
                (AttemptRow.job_id == JobRow.id) & (AttemptRow.number == JobRow.attempt_count),
            )
            .where(
                JobRow.state.in_(MAY_HOLD_TRANSFER),
                AttemptRow.status == AttemptState.COMPLETED,
                AttemptRow.ended_at <= stale,
            )
            .limit(BATCH)
        ).all()
    return [
        job_id
        for job_id, options in rows
        if TransferOptions.model_validate(options).reads_checksums
    ]
