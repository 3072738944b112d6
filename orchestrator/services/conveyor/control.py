"""What people do to running jobs: cancel, pause, resume, change the rate or priority, retry.

Controls on a job whose transfer is on the node act through the node (PUT or CANCEL on the
node that runs it: the source, or the destination for a pull); the poller then records the
node's new status, so the database follows the node.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, select, update

from orchestrator.db.tables import AttemptRow, JobRow
from orchestrator.domain import units
from orchestrator.domain.jobs import TransferOptions
from orchestrator.domain.states import (
    BEFORE_NODE,
    FAILED_ENDS,
    HOLDS_A_DESTINATION,
    POSTED,
    JobState,
)
from orchestrator.errors import NodeNotFound
from orchestrator.services.context import ServiceContext
from orchestrator.services.conveyor.fanout import parts_of
from orchestrator.services.conveyor.jobs import JobNotFound, get_job
from orchestrator.services.conveyor.modes import runner_id
from orchestrator.services.conveyor.pacing import poll_soon
from orchestrator.services.conveyor.transitions import InvalidTransition, move
from orchestrator.services.events import record
from orchestrator.taskqueue import TaskName


def _remote_id(ctx: ServiceContext, job: JobRow) -> str | None:
    with ctx.sessions() as session:
        return session.scalar(
            select(AttemptRow.remote_id).where(
                AttemptRow.job_id == job.id, AttemptRow.number == job.attempt_count
            )
        )


def _parts(ctx: ServiceContext, job_id: str) -> list[JobRow] | None:
    """A fan-out job's parts, or None for an ordinary job (a control then acts on it alone)."""
    with ctx.sessions() as session:
        job = get_job(session, job_id)
        return parts_of(session, job_id) if job.is_parent else None


def _on_parts(
    ctx: ServiceContext, job_id: str, parts: list[JobRow], action: str, states: set[JobState]
) -> list[JobRow]:
    """The parts a parent's control applies to (those in ``states``), noted on the parent;
    refused when there is none."""
    chosen = [part for part in parts if JobState(part.state) in states]
    if not chosen:
        raise InvalidTransition(f"no destination of this fan-out job can be {action}")
    _note(ctx, job_id, f"{action}: {len(chosen)} of {len(parts)} destinations")
    return chosen


def cancel_job(ctx: ServiceContext, job_id: str) -> JobState:
    """Cancel a job wherever it is; returns its state after the request (a fan-out job:
    each of its open parts)."""
    if (parts := _parts(ctx, job_id)) is not None:
        open_parts = [p for p in parts if not JobState(p.state).is_terminal]
        if not open_parts:
            return _close_parent(ctx, job_id)
        for part in _on_parts(ctx, job_id, open_parts, "cancel requested", set(JobState)):
            try:
                cancel_job(ctx, part.id)
            except InvalidTransition:  # it ended meanwhile
                continue
        with ctx.sessions() as session:
            return JobState(get_job(session, job_id).state)
    now = ctx.now()
    with ctx.unit_of_work() as work:
        job = get_job(work.session, job_id)
        state = JobState(job.state)
        if state.is_terminal:
            raise InvalidTransition(f"a {state} job cannot be canceled")
        job.cancel_requested = True
        if state in BEFORE_NODE:
            ended = move(work, job_id, state, JobState.CANCELED, "canceled by request", at=now)
            if ended in HOLDS_A_DESTINATION:  # what waited behind it may go now
                work.after_commit(TaskName.DISPATCH, lambda: ctx.enqueue(TaskName.DISPATCH))
        else:
            record(work.session, job_id, "operator", "cancel requested", at=now)
        work.commit()
    if state not in POSTED:
        return JobState.CANCELED if state in BEFORE_NODE else state
    remote_id = _remote_id(ctx, job)
    if remote_id is None:
        return state
    try:
        ctx.clients.get(runner_id(job)).cancel_transfer(remote_id)
        poll_soon(ctx, runner_id(job))
    except NodeNotFound:
        # The node forgot the transfer: nothing left to stop.
        with ctx.unit_of_work() as work:
            move(work, job_id, state, JobState.CANCELED, "canceled (node forgot it)", at=now)
            work.commit()
        return JobState.CANCELED
    return state


def _close_parent(ctx: ServiceContext, job_id: str) -> JobState:
    """Cancel a fan-out job whose parts all ended, yet needs attention (its destinations'
    copies differ): it has nothing left to stop or retry, so the cancel closes it alone."""
    with ctx.unit_of_work() as work:
        moved = move(
            work,
            job_id,
            JobState.NEEDS_ATTENTION,
            JobState.CANCELED,
            "canceled by request (every destination had ended)",
            at=ctx.now(),
        )
        if moved is None:
            raise InvalidTransition(
                "every destination of this fan-out job ended: nothing to cancel"
            )
        work.commit()
    return JobState.CANCELED


def pause_job(ctx: ServiceContext, job_id: str) -> None:
    """Pause the job's transfer on the node that runs it (a fan-out job: its parts')."""
    if (parts := _parts(ctx, job_id)) is not None:
        for part in _on_parts(ctx, job_id, parts, "pause requested", {*POSTED} - {JobState.PAUSED}):
            pause_job(ctx, part.id)
        return
    job, remote_id = _on_node(ctx, job_id, {JobState.SUBMITTED, JobState.RUNNING}, "paused")
    ctx.clients.get(runner_id(job)).pause_transfer(remote_id)
    poll_soon(ctx, runner_id(job))
    # A link budget may have paused it already (a poll has not shown it yet): the pause is
    # the person's now, and only a person resumes it (the allocator leaves it out).
    _tell_allocator(ctx, job_id, remote_id, AttemptRow.policy_paused.is_(True), policy_paused=False)
    _note(ctx, job_id, "pause requested")


def resume_job(ctx: ServiceContext, job_id: str) -> None:
    """Resume the job's paused transfer (a fan-out job: its parts' paused transfers)."""
    if (parts := _parts(ctx, job_id)) is not None:
        for part in _on_parts(ctx, job_id, parts, "resume requested", {JobState.PAUSED}):
            resume_job(ctx, part.id)
        return
    job, remote_id = _on_node(ctx, job_id, {JobState.PAUSED}, "resumed")
    ctx.clients.get(runner_id(job)).resume_transfer(remote_id)
    poll_soon(ctx, runner_id(job))
    # A person's resume of what a link budget paused: the allocator shares the link again
    # from the next interval (and says so if it must pause the job once more).
    paused = AttemptRow.policy_paused.is_(True)
    _tell_allocator(ctx, job_id, remote_id, paused, policy_paused=False, allocated_at=ctx.now())
    _note(ctx, job_id, "resume requested")


def _rate_change_text(changes: dict[str, int | None]) -> str:
    """'rate change: target 5.00 Mbps, minimum 1.00 Mbps'."""
    words = {"target_rate_kbps": "target", "min_rate_kbps": "minimum"}
    said = ", ".join(
        f"{words[key]} {units.bitrate(kbps, missing='0 bps')}" for key, kbps in changes.items()
    )
    return f"rate change: {said}"


def change_rate(
    ctx: ServiceContext,
    job_id: str,
    *,
    target_rate_kbps: int | None = None,
    min_rate_kbps: int | None = None,
) -> None:
    """Change the job's rates; applied to the running transfer too (a fan-out job: to each
    of its open parts as well)."""
    changes = {"target_rate_kbps": target_rate_kbps, "min_rate_kbps": min_rate_kbps}
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        raise ValueError("give target_rate_kbps or min_rate_kbps")
    for part in _parts(ctx, job_id) or []:
        if not JobState(part.state).is_terminal:
            change_rate(ctx, part.id, **changes)
    with ctx.sessions() as session:
        job = get_job(session, job_id)
        if JobState(job.state).is_terminal:
            raise InvalidTransition(f"a {job.state} job has no transfer to change")
        options = TransferOptions.model_validate({**job.options, **changes})
        job.options = options.model_dump(exclude_defaults=True)
        record(session, job_id, "operator", _rate_change_text(changes), at=ctx.now())
        session.commit()
        state = JobState(job.state)
    if state in POSTED:
        remote_id = _remote_id(ctx, job)
        if remote_id is not None:
            ctx.clients.get(runner_id(job)).modify_transfer(
                remote_id, target_rate_kbps=target_rate_kbps, min_rate_kbps=min_rate_kbps
            )
            # A person's rate replaces the allocator's share on the node: the allocator sends
            # the share again after the next poll (the job's own rate is a cap there), rather
            # than leave it above its share until the share moves. One it paused keeps its mark.
            shared = (AttemptRow.allocated_at.is_not(None), AttemptRow.policy_paused.is_(False))
            _tell_allocator(ctx, job_id, remote_id, *shared, allocated_kbps=None, allocated_at=None)
            poll_soon(ctx, runner_id(job))  # its expected end moved


def _tell_allocator(
    ctx: ServiceContext, job_id: str, remote_id: str, *when: ColumnElement[bool], **values: object
) -> None:
    """Change the link allocator's marks on the job's transfer, where ``when`` holds."""
    with ctx.sessions() as session:
        session.execute(
            update(AttemptRow)
            .where(AttemptRow.job_id == job_id, AttemptRow.remote_id == remote_id, *when)
            .values(**values)
        )
        session.commit()


def change_priority(ctx: ServiceContext, job_id: str, priority: int) -> None:
    """Change a job's priority (matters while it waits for admission; a fan-out job's parts
    take it too)."""
    if not -100 <= priority <= 100:
        raise ValueError("priority goes from -100 to 100")
    with ctx.sessions() as session:
        job = get_job(session, job_id)
        if job.is_parent:
            for part in parts_of(session, job_id):
                part.priority = priority
        job.priority = priority
        record(session, job_id, "operator", f"priority set to {priority}", at=ctx.now())
        session.commit()
    ctx.enqueue(TaskName.DISPATCH)


def retry_job(ctx: ServiceContext, job_id: str) -> None:
    """Queue a failed (or flagged) job again with a fresh attempt budget (a fan-out job: only
    its parts that did not complete)."""
    if (parts := _parts(ctx, job_id)) is not None:
        with ctx.sessions() as session:
            state = JobState(get_job(session, job_id).state)
        if state not in FAILED_ENDS:
            raise InvalidTransition(f"only failed or flagged jobs can be retried, not {state}")
        for part in _on_parts(ctx, job_id, parts, "retry requested", set(FAILED_ENDS)):
            retry_job(ctx, part.id)
        return
    now = ctx.now()
    with ctx.unit_of_work() as work:
        job = get_job(work.session, job_id)
        state = JobState(job.state)
        if state not in FAILED_ENDS:
            raise InvalidTransition(f"only failed or flagged jobs can be retried, not {state}")
        tried = job.attempt_count - job.submit_failures
        moved = move(
            work,
            job_id,
            state,
            JobState.QUEUED,
            "retry requested",
            at=now,
            values={
                "max_attempts": tried + job.max_attempts,  # a fresh budget
                "finished_at": None,
                "reason": None,
                "next_attempt_at": None,
                "acknowledged_at": None,  # a new failure is news again
                "acknowledged_by": None,
            },
        )
        if moved is None:
            raise InvalidTransition("the job changed state meanwhile; look again")
        work.commit()
    ctx.enqueue(TaskName.DISPATCH)


@dataclass(frozen=True)
class BulkRetry:
    """What a retry of several jobs did: the ids queued again, and why each other one was not."""

    retried: list[str]
    refused: dict[str, str]


def retry_jobs(ctx: ServiceContext, job_ids: list[str]) -> BulkRetry:
    """Retry each job on its own: one that cannot be retried does not hold the others back."""
    retried: list[str] = []
    refused: dict[str, str] = {}
    for job_id in dict.fromkeys(job_ids):
        try:
            retry_job(ctx, job_id)
        except (InvalidTransition, JobNotFound) as exc:
            refused[job_id] = str(exc)
        else:
            retried.append(job_id)
    return BulkRetry(retried, refused)


def acknowledge_job(ctx: ServiceContext, job_id: str, by: str) -> bool:
    """Mark a failed or flagged job as seen by ``by`` (the dashboard's verdict stops counting
    it); False when it already was."""
    with ctx.sessions() as session:
        job = get_job(session, job_id)
        if JobState(job.state) not in FAILED_ENDS:
            raise InvalidTransition(
                f"only failed or flagged jobs can be acknowledged, not {job.state}"
            )
        if job.acknowledged_at is not None:
            return False
        now = ctx.now()
        job.acknowledged_at = now
        job.acknowledged_by = by
        record(session, job_id, "operator", f"failure acknowledged by {by}", at=now)
        session.commit()
    return True


def _on_node(
    ctx: ServiceContext, job_id: str, allowed: set[JobState], verb: str
) -> tuple[JobRow, str]:
    with ctx.sessions() as session:
        job = get_job(session, job_id)
    state = JobState(job.state)
    if state not in allowed:
        raise InvalidTransition(f"a {state} job cannot be {verb}")
    remote_id = _remote_id(ctx, job)
    if remote_id is None:
        raise InvalidTransition(f"the job has no transfer on the node yet to be {verb}")
    return job, remote_id


def _note(ctx: ServiceContext, job_id: str, message: str) -> None:
    with ctx.sessions() as session:
        record(session, job_id, "operator", message, at=ctx.now())
        session.commit()
