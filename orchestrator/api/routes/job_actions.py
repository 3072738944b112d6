"""The console's buttons: cancel, retry, pause, resume, rate, priority and acknowledge on one
job, and a retry of several failed jobs.

Each form needs the submit scope, comes from this site (Origin / Sec-Fetch-Site), and carries
the CSRF token of the session that shows it. The answer is a redirect back to the page with
a message of what happened (post/redirect/get), so a reload never sends the form twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.responses import RedirectResponse

from orchestrator.api.deps import ContextDep
from orchestrator.api.web import (
    caller_of,
    console_page,
    csrf_valid,
    field,
    form_fields,
    leave_message,
    local_path,
    same_origin,
    sign_in_page,
)
from orchestrator.domain.jobs import MAX_RATE_KBPS
from orchestrator.errors import NodeError
from orchestrator.logsetup import redact
from orchestrator.services.context import ServiceContext
from orchestrator.services.conveyor import control
from orchestrator.services.conveyor.jobs import JobNotFound, JobRejected
from orchestrator.services.conveyor.transitions import InvalidTransition
from orchestrator.services.tokens import Caller, Scope
from orchestrator.services.views.jobs import resolve_job_id

router = APIRouter(include_in_schema=False, dependencies=[Depends(same_origin)])

FormDep = Annotated[dict[str, list[str]], Depends(form_fields)]
MAX_SELECTED = 50  # a search page; the 4 KiB form limit holds about 90 ids
REFUSED = "Not allowed"
STALE_FORM = (
    "This form's CSRF token is missing or does not belong to your session (the page is from "
    "another session, or another site sent it): reload the page and try again."
)


def _allowed(request: Request, ctx: ServiceContext, fields: dict[str, list[str]]) -> Caller:
    """The caller, if it may act and the form is its own; else the page that says why."""
    caller = caller_of(request, ctx)
    if caller is None:
        raise _Answer(sign_in_page(request, "Sign in again: your session is over."))
    if not caller.allows(Scope.SUBMIT):
        text = f"The token {caller.name} may read but not act: acting needs the submit scope."
        raise _Answer(_refusal(request, ctx, caller, text))
    if not csrf_valid(request, fields):
        raise _Answer(_refusal(request, ctx, caller, STALE_FORM))
    return caller


def _refusal(request: Request, ctx: ServiceContext, caller: Caller, text: str) -> Response:
    code = status.HTTP_403_FORBIDDEN
    return console_page(request, ctx, caller, "notice.html", code, heading=REFUSED, text=text)


class _Answer(Exception):
    """A page to answer with instead of acting."""

    def __init__(self, response: Response) -> None:
        super().__init__()
        self.response = response


def _back(target: str, message: tuple[str, str]) -> Response:
    answer = RedirectResponse(target, status.HTTP_303_SEE_OTHER)
    leave_message(answer, message[0], redact(message[1]))
    return answer


def _whole_number(fields: dict[str, list[str]], name: str, low: int, high: int) -> int:
    text = field(fields, name)
    try:
        number = int(text)
    except ValueError:
        number = low - 1
    if not low <= number <= high:
        raise ValueError(f"{name}: give a whole number from {low} to {high}")
    return number


def _cancel(ctx: ServiceContext, job_id: str, _: Caller, __: dict[str, list[str]]) -> str:
    state = control.cancel_job(ctx, job_id)
    return "canceled" if state == "canceled" else "cancel requested on the node"


def _retry(ctx: ServiceContext, job_id: str, _: Caller, __: dict[str, list[str]]) -> str:
    control.retry_job(ctx, job_id)
    return "queued again with a fresh attempt budget"


def _pause(ctx: ServiceContext, job_id: str, _: Caller, __: dict[str, list[str]]) -> str:
    control.pause_job(ctx, job_id)
    return "pause requested on the node; the next poll shows it paused"


def _resume(ctx: ServiceContext, job_id: str, _: Caller, __: dict[str, list[str]]) -> str:
    control.resume_job(ctx, job_id)
    return "resume requested on the node"


def _rate(ctx: ServiceContext, job_id: str, _: Caller, fields: dict[str, list[str]]) -> str:
    kbps = _whole_number(fields, "target_rate_kbps", 1, MAX_RATE_KBPS)
    control.change_rate(ctx, job_id, target_rate_kbps=kbps)
    return f"target rate set to {kbps} kbps"


def _priority(ctx: ServiceContext, job_id: str, _: Caller, fields: dict[str, list[str]]) -> str:
    priority = _whole_number(fields, "priority", -100, 100)
    control.change_priority(ctx, job_id, priority)
    return f"priority set to {priority}"


def _acknowledge(ctx: ServiceContext, job_id: str, caller: Caller, _: dict[str, list[str]]) -> str:
    if control.acknowledge_job(ctx, job_id, caller.name):
        return "failure acknowledged: the overview no longer counts it"
    return "was already acknowledged"


Action = Callable[[ServiceContext, str, Caller, dict[str, list[str]]], str]
ACTIONS: dict[str, Action] = {
    "cancel": _cancel,
    "retry": _retry,
    "pause": _pause,
    "resume": _resume,
    "rate": _rate,
    "priority": _priority,
    "acknowledge": _acknowledge,
}
VERBS = {"rate": "change the rate", "priority": "change the priority"}


@router.post("/dashboard/jobs/retry")
def retry_selected(request: Request, ctx: ContextDep, fields: FormDep) -> Response:
    """Retry every selected failed or flagged job; each one that cannot be is named."""
    try:
        _allowed(request, ctx, fields)
    except _Answer as answer:
        return answer.response
    back = local_path(field(fields, "next"), "/jobs")
    chosen = [j.strip() for j in fields.get("job", []) if j.strip()]
    if not chosen:
        return _back(back, ("error", "cannot retry: select at least one failed job"))
    if len(chosen) > MAX_SELECTED:
        return _back(back, ("error", f"cannot retry more than {MAX_SELECTED} jobs at once"))
    report = control.retry_jobs(ctx, chosen)
    parts = []
    if report.retried:
        parts.append(f"queued {len(report.retried)} job(s) again")
    parts += [f"cannot retry {j[:8]}: {why}" for j, why in report.refused.items()]
    return _back(back, ("ok" if not report.refused else "error", "; ".join(parts)))


@router.post("/dashboard/jobs/{job_id}/{action}")
def act(job_id: str, action: str, request: Request, ctx: ContextDep, fields: FormDep) -> Response:
    """One action on one job, then back to the page the form was on."""
    do = ACTIONS.get(action)
    if do is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no action {action!r} on jobs")
    try:
        caller = _allowed(request, ctx, fields)
    except _Answer as answer:
        return answer.response
    back = local_path(field(fields, "next"), f"/jobs/{job_id}")
    verb = VERBS.get(action, action)
    try:
        full = resolve_job_id(ctx, job_id)
        done = do(ctx, full, caller, fields)
    except (InvalidTransition, JobNotFound, JobRejected, ValueError, NodeError) as exc:
        return _back(back, ("error", f"cannot {verb} job {job_id[:8]}: {exc}"))
    return _back(back, ("ok", f"job {full[:8]}: {done}"))
