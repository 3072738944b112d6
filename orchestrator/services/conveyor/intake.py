"""Jobs that arrive as queue messages (send_task) instead of REST calls: same body, same checks;
and batches of jobs, from either."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from orchestrator.domain.jobs import MAX_BATCH, JobSpec
from orchestrator.services.context import ServiceContext
from orchestrator.services.conveyor.jobs import (
    Created,
    JobRejected,
    JobRequest,
    KeyOwner,
    Outcome,
    Refused,
    check_caller_key,
    create_job,
    create_jobs,
)

log = logging.getLogger(__name__)


def submit_message(ctx: ServiceContext, body: Any, idempotency_key: str | None = None) -> str:
    """Validate a job body as POST /api/v1/jobs does, create the job, and say what happened.

    A message that cannot become a job is rejected with the field and the reason, once: a
    retry could not fix it.
    """
    try:
        spec = JobSpec.model_validate(body)
    except ValidationError as exc:
        said = _invalid(exc)
        log.warning("rejected a job message: %s", said)
        return f"rejected: {said}"
    if idempotency_key is not None and not (0 < len(idempotency_key) <= 255):
        return "rejected: idempotency_key: 1 to 255 characters"
    try:
        check_caller_key(idempotency_key)
        # The queue's senders share one owner (None): a key reused with another body is
        # refused, as on the API.
        created = create_job(
            ctx, spec, idempotency_key=idempotency_key, key_owner=KeyOwner(token_id=None)
        )
    except JobRejected as exc:
        log.warning("rejected a job message: %s", exc)
        return f"rejected: {exc}"
    return _said(created)


def submit_batch(
    ctx: ServiceContext, jobs: Sequence[tuple[JobSpec, str | None]], owner: KeyOwner
) -> list[Outcome]:
    """Validated jobs with their callers' idempotency keys, created in one transaction; an
    outcome per job, in order (a reserved key refuses its job alone)."""
    outcomes: list[Outcome | None] = []
    requests: list[JobRequest] = []
    for spec, key in jobs:
        try:
            check_caller_key(key)
        except JobRejected as exc:
            outcomes.append(Refused(exc))
            continue
        outcomes.append(None)
        requests.append(JobRequest(spec, idempotency_key=key))
    made = iter(create_jobs(ctx, requests, key_owner=owner))
    return [outcome if outcome is not None else next(made) for outcome in outcomes]


def submit_messages(ctx: ServiceContext, bodies: Any) -> str:
    """A queue message of many job bodies (each as POST /api/v1/jobs takes it, with its own
    ``idempotency_key``): one transaction, and one line per body saying what happened."""
    if not isinstance(bodies, list) or not 0 < len(bodies) <= MAX_BATCH:
        log.warning("rejected a batch message: not a list of 1 to %d job bodies", MAX_BATCH)
        return f"rejected: bodies: a list of 1 to {MAX_BATCH} job bodies"
    lines: list[str | None] = []
    valid: list[tuple[JobSpec, str | None]] = []
    for number, body in enumerate(bodies):
        fields = dict(body) if isinstance(body, dict) else body
        key = fields.pop("idempotency_key", None) if isinstance(fields, dict) else None
        try:
            spec = JobSpec.model_validate(fields)
        except ValidationError as exc:
            lines.append(f"{number}: rejected: {_invalid(exc)}")
            continue
        if key is not None and not (isinstance(key, str) and 0 < len(key) <= 255):
            lines.append(f"{number}: rejected: idempotency_key: 1 to 255 characters")
            continue
        lines.append(None)
        valid.append((spec, key))
    outcomes = iter(submit_batch(ctx, valid, KeyOwner(token_id=None)))
    said = [
        line if line is not None else f"{number}: {_said(next(outcomes))}"
        for number, line in enumerate(lines)
    ]
    rejected = [line for line in said if ": rejected: " in line]
    if rejected:
        log.warning("rejected %d of %d jobs of a batch message: %s", len(rejected), len(said),
                    "; ".join(rejected))  # fmt: skip
    return "\n".join(said)


def _said(outcome: Outcome) -> str:
    """One outcome in words, as the task's result says it."""
    if isinstance(outcome, Refused):
        return f"rejected: {outcome.error}"
    assert isinstance(outcome, Created)
    verb = "queued" if outcome.created else "already known"
    said = "".join(f"; warning: {warning}" for warning in outcome.warnings)
    return f"job {outcome.job.id} {verb}{said}"


def _invalid(exc: ValidationError) -> str:
    """A body's first validation error: its field and reason."""
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "body"
    return f"{field}: {first['msg']}"
