"""The finisher's remediation: a failed transfer's code picks its row of domain/remediation.py.

``remedy_failure`` may change where the job goes (a fresh token at once, a comparison with the
destination, a hold on a full destination, a failure that names the path); ``count_end``
feeds the link's circuit breaker and releases a held destination when a transfer completes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from orchestrator.db.tables import AttemptRow, JobRow, NodeRow
from orchestrator.domain.jobs import TransferMode
from orchestrator.domain.remediation import (
    TOKEN_CODES,
    Remedy,
    code_name,
    remedy_for,
)
from orchestrator.domain.sshendpoints import SSH
from orchestrator.domain.states import JobState
from orchestrator.domain.transfers import TransferFailure, TransferSnapshot, TransferStatus
from orchestrator.services.context import UnitOfWork
from orchestrator.services.conveyor.breakers import (
    hold_destination,
    note_link_outcome,
    release_destination,
)


@dataclass(frozen=True)
class Remedied:
    """Where the job goes instead, what it carries, and what its event adds."""

    target: JobState
    message: str
    values: dict[str, object] = field(default_factory=dict)


def count_end(work: UnitOfWork, job: JobRow, snapshot: TransferSnapshot, *, now: datetime) -> None:
    """An attempt ended on the node: count it on its link; a completion releases a hold."""
    if snapshot.status is TransferStatus.COMPLETED:
        note_link_outcome(work, job, success=True, now=now)
        release_destination(work, job, now=now)
    elif snapshot.error is not None and remedy_for(snapshot.error.code, snapshot.error.text) in (
        Remedy.BACK_OFF,
    ):
        note_link_outcome(work, job, success=False, now=now)


def remedy_failure(
    work: UnitOfWork,
    job: JobRow,
    attempt: AttemptRow,
    failure: TransferFailure,
    *,
    attempts_left: bool,
    now: datetime,
) -> Remedied | None:
    """The job's move for a failed transfer, when its code has a remedy beyond retry-or-stop."""
    remedy = remedy_for(failure.code, failure.text)
    name = code_name(failure.code)
    if remedy is Remedy.RESUBMIT_NOW:
        destination = work.session.get(NodeRow, job.destination_node_id)
        if destination is not None and destination.kind == SSH:
            # No token here: the endpoint refused its transfer user's password or key, and a
            # new attempt would present the same credential.
            reason = (
                f"{failure}; SSH endpoint {destination.name} refused the login of "
                f"{destination.username}: check its password or key (PATCH /api/v1/nodes/"
                f"{destination.name}), then retry"
            )
            return Remedied(JobState.FAILED, "; the SSH login was refused", {"reason": reason})
        # The token's granter: the destination (upload_setup), or the source for a pull.
        granter, setup = (
            ("source", "download_setup")
            if job.mode == TransferMode.PULL
            else ("destination", "upload_setup")
        )
        if _previous_code(work, attempt) in TOKEN_CODES:
            reason = (
                f"{failure}; a fresh token was refused too, so the token is not the cause: "
                f"check the {granter}'s transfer user and token_encryption_key (node-api.md "
                "§8.2), then retry"
            )
            return Remedied(
                JobState.FAILED, "; refused again with a fresh token", {"reason": reason}
            )
        if attempts_left:
            return Remedied(
                JobState.RETRY_WAIT,
                f"; the {granter} refused the token ({name}): a new {setup} and "
                f"attempt {attempt.number + 1} at once",
                {"next_attempt_at": now},
            )
        return None
    if remedy is Remedy.COMPARE_EXISTING:
        return Remedied(
            JobState.RETRY_WAIT,
            f"; a destination file exists ({name}): its size is compared with the source's "
            "before anything is posted again",
            {"next_attempt_at": now},
        )
    if remedy is Remedy.HOLD_DESTINATION:
        why = f"{failure.text or 'no space left on disk'} ({name}) at {now:%H:%M:%S} UTC"
        reason = hold_destination(work, job, why, now=now)
        if not attempts_left:
            return None
        return Remedied(JobState.RETRY_WAIT, f"; {reason}", {"next_attempt_at": now})
    if remedy is Remedy.FAIL_NOW:
        source = work.session.scalar(select(NodeRow.name).where(NodeRow.id == job.source_node_id))
        paths = ", ".join(p["source"] for p in job.source_paths)
        reason = f"source path {paths} on {source}: {failure.text or 'no such file'} ({name})"
        return Remedied(JobState.FAILED, "; the source is missing", {"reason": reason})
    return None


def _previous_code(work: UnitOfWork, attempt: AttemptRow) -> int | None:
    """The error code of the attempt before this one."""
    return work.session.scalar(
        select(AttemptRow.error_code).where(
            AttemptRow.job_id == attempt.job_id, AttemptRow.number == attempt.number - 1
        )
    )
