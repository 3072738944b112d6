"""Jobs that arrive as queue messages (send_task) instead of REST calls: same body, same checks."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from orchestrator.domain.jobs import JobSpec
from orchestrator.services.context import ServiceContext
from orchestrator.services.conveyor.jobs import (
    JobRejected,
    KeyOwner,
    check_caller_key,
    create_job,
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
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        log.warning("rejected a job message: %s: %s", field, first["msg"])
        return f"rejected: {field}: {first['msg']}"
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
    verb = "queued" if created.created else "already known"
    said = "".join(f"; warning: {warning}" for warning in created.warnings)
    return f"job {created.job.id} {verb}{said}"
