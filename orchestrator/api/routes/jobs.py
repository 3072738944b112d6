"""/api/v1/jobs: submit, list, show, and act on jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Response, status
from fastapi.responses import StreamingResponse

from orchestrator.api.deps import ContextDep, ReadDep, SubmitDep
from orchestrator.api.downloads import csv_download
from orchestrator.api.schemas import (
    AttemptOut,
    EventOut,
    JobBatch,
    JobBatchOut,
    JobBatchResult,
    JobCreate,
    JobDetail,
    JobFileList,
    JobFileOut,
    JobList,
    JobOut,
    PriorityChange,
    RateChange,
    error_responses,
)
from orchestrator.domain.jobs import LABEL_KEY_LENGTH, LABEL_VALUE_LENGTH, JobSpec
from orchestrator.domain.states import JobState
from orchestrator.logsetup import redact
from orchestrator.services.conveyor import control
from orchestrator.services.conveyor.intake import submit_batch
from orchestrator.services.conveyor.jobs import (
    KeyOwner,
    KeyReused,
    Outcome,
    Refused,
    check_caller_key,
    create_job,
)
from orchestrator.services.views.jobs import JobFilter, find_jobs, resolve_job_id, show_job
from orchestrator.services.views.stored_files import stored_files

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])

ERRORS = error_responses(
    {
        404: "no such job",
        409: "not possible in the job's state, or an Idempotency-Key used with another body",
    }
)


def full_job_id(job_id: str, ctx: ContextDep, _: ReadDep) -> str:
    """The path's job id, or a unique prefix of one (8+ characters), as the full id (only
    for a caller with a valid token: nobody else learns which ids exist)."""
    return resolve_job_id(ctx, job_id)


JobIdDep = Annotated[str, Depends(full_job_id)]


def job_detail(ctx: ContextDep, job_id: str, warnings: tuple[str, ...] = ()) -> JobDetail:
    """The API's answer for one job: the job view with its attempts and events."""
    view = show_job(ctx, job_id)
    return JobDetail.model_validate(
        {
            **{
                k: v
                for k, v in vars(view).items()
                if k not in ("attempt_list", "events", "destinations")
            },
            "destinations": [vars(d) for d in view.destinations],
            "progress": view.progress,
            "deadline_missed": view.deadline_missed,
            "warnings": list(warnings),
            "attempt_list": [
                AttemptOut.model_validate(a, from_attributes=True) for a in view.attempt_list
            ],
            "events": [EventOut.model_validate(e, from_attributes=True) for e in view.events],
        }
    )


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobDetail,
    responses=ERRORS,
    summary="Submit a job",
)
def submit_job(
    body: JobCreate,
    ctx: ContextDep,
    response: Response,
    caller: SubmitDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            max_length=255,
            description="the same key with the same body, from the same token, returns the "
            "job it created first (200), never a second job; the key with another body or "
            "from another token is refused (409)",
        ),
    ] = None,
) -> JobDetail:
    """Queue a job; it is committed before anything is sent to a worker.

    With a ``deadline``, the job's finish is estimated from the link's measured rate and the
    work ahead of it: a deadline it would miss is said in ``warnings`` (202), or refused (422)
    with ``deadline_policy: "reject"``."""
    check_caller_key(idempotency_key)
    created = create_job(
        ctx,
        JobSpec.model_validate(body.model_dump()),
        idempotency_key=idempotency_key,
        key_owner=KeyOwner(caller.id),
    )
    if not created.created:
        response.status_code = status.HTTP_200_OK
    return job_detail(ctx, created.job.id, created.warnings)


@router.post(
    "/batch",
    status_code=status.HTTP_207_MULTI_STATUS,
    response_model=JobBatchOut,
    responses=ERRORS,
    summary="Submit jobs in one batch",
)
def submit_jobs(body: JobBatch, ctx: ContextDep, caller: SubmitDep) -> JobBatchOut:
    """Queue up to 100 jobs in one transaction; each job answers for itself (207).

    Every job is validated as POST /api/v1/jobs validates one: a body that is not valid is
    refused whole (422, with the field, e.g. ``jobs.3.source_paths``) and queues nothing.
    Past that, a job the registry refuses (an unknown node, a path outside a root, a
    deadline refused), or whose ``idempotency_key`` was used otherwise, is refused alone in
    its result; the others are queued. A job's key works as the Idempotency-Key header does
    for POST /api/v1/jobs: the same job again answers 200 with the job it made."""
    jobs = [
        (JobSpec.model_validate(item.model_dump(exclude={"idempotency_key"})), item.idempotency_key)
        for item in body.jobs
    ]
    results = [
        _result(index, outcome)
        for index, outcome in enumerate(submit_batch(ctx, jobs, KeyOwner(caller.id)))
    ]
    return JobBatchOut(
        queued=sum(r.status == status.HTTP_202_ACCEPTED for r in results),
        known=sum(r.status == status.HTTP_200_OK for r in results),
        refused=sum(r.job_id is None for r in results),
        results=results,
    )


def _result(index: int, outcome: Outcome) -> JobBatchResult:
    """One job's result in a batch's answer: the status its own POST would have had."""
    if isinstance(outcome, Refused):
        code = 409 if isinstance(outcome.error, KeyReused) else 422
        field = "idempotency_key" if outcome.field == "Idempotency-Key" else outcome.field
        reason = str(outcome.error).removeprefix("Idempotency-Key: ")
        return JobBatchResult(index=index, status=code, error=redact(reason), field=field)
    return JobBatchResult(
        index=index,
        status=status.HTTP_202_ACCEPTED if outcome.created else status.HTTP_200_OK,
        job_id=outcome.job.id,
        state=outcome.job.state,
        warnings=list(outcome.warnings),
    )


@router.get("", response_model=JobList, responses=ERRORS, summary="List jobs, newest first")
def list_all(
    ctx: ContextDep,
    _: ReadDep,
    state: Annotated[list[JobState] | None, Query(description="one or more states")] = None,
    node: Annotated[
        str | None, Query(max_length=64, description="source or destination node")
    ] = None,
    schedule: Annotated[
        str | None, Query(max_length=64, description="jobs of this schedule")
    ] = None,
    label: Annotated[
        str | None,
        Query(
            max_length=LABEL_KEY_LENGTH + 1 + LABEL_VALUE_LENGTH,
            pattern=r"^[^=]+=.*$",
            description="key=value",
        ),
    ] = None,
    path: Annotated[
        str | None,
        Query(max_length=1024, description="part of a source or destination path, any case"),
    ] = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> JobList:
    """Jobs matching every filter given, a page at a time."""
    label_pair = tuple(label.split("=", 1)) if label else None
    where = JobFilter(
        states=tuple(s.value for s in state or ()),
        node=node,
        schedule_id=schedule,
        label=(label_pair[0], label_pair[1]) if label_pair else None,
        created_after=created_after,
        created_before=created_before,
        path=path,
    )
    page = find_jobs(ctx, where, limit=limit, cursor=cursor)
    items = [
        JobOut.model_validate(
            {**vars(view), "progress": view.progress, "deadline_missed": view.deadline_missed}
        )
        for view in page.items
    ]
    return JobList(items=items, next_cursor=page.next_cursor)


@router.get("/{job_id}", response_model=JobDetail, responses=ERRORS, summary="Show a job")
def show(job_id: JobIdDep, ctx: ContextDep, _: ReadDep) -> JobDetail:
    """A job with its attempts, progress, ETA, why it waits, and the node's error."""
    return job_detail(ctx, job_id)


@router.get(
    "/{job_id}/files",
    response_model=JobFileList,
    responses={
        **ERRORS,
        200: {"content": {"text/csv": {}}, "description": "a page (JSON) or every file (CSV)"},
    },
    summary="A job's files and checksums",
)
def files(
    job_id: JobIdDep,
    ctx: ContextDep,
    _: ReadDep,
    offset: Annotated[int, Query(ge=0, le=100_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    format: Annotated[
        Literal["json", "csv"], Query(description="csv: every file, as a download")
    ] = "json",
) -> JobFileList | StreamingResponse:
    """The files of the job's completed transfer with their checksums, stored when the job
    asked for checksums (options.file_checksum or require_checksums); empty otherwise."""
    if format == "csv":
        return csv_download(ctx, job_id)
    page = stored_files(ctx, job_id, offset=offset, limit=limit)
    return JobFileList(
        items=[JobFileOut.model_validate(vars(f)) for f in page.items],
        total=page.total,
        next_offset=page.next_offset,
    )


@router.post("/{job_id}/cancel", response_model=JobDetail, responses=ERRORS, summary="Cancel")
def cancel(job_id: JobIdDep, ctx: ContextDep, _: SubmitDep) -> JobDetail:
    """Cancel the job; a transfer on the node is canceled there."""
    control.cancel_job(ctx, job_id)
    return job_detail(ctx, job_id)


@router.post("/{job_id}/retry", response_model=JobDetail, responses=ERRORS, summary="Retry")
def retry(job_id: JobIdDep, ctx: ContextDep, _: SubmitDep) -> JobDetail:
    """Queue a failed or flagged job again with a fresh attempt budget."""
    control.retry_job(ctx, job_id)
    return job_detail(ctx, job_id)


@router.post("/{job_id}/pause", response_model=JobDetail, responses=ERRORS, summary="Pause")
def pause(job_id: JobIdDep, ctx: ContextDep, _: SubmitDep) -> JobDetail:
    """Pause the job's transfer on the node that runs it."""
    control.pause_job(ctx, job_id)
    return job_detail(ctx, job_id)


@router.post("/{job_id}/resume", response_model=JobDetail, responses=ERRORS, summary="Resume")
def resume(job_id: JobIdDep, ctx: ContextDep, _: SubmitDep) -> JobDetail:
    """Resume the job's paused transfer."""
    control.resume_job(ctx, job_id)
    return job_detail(ctx, job_id)


@router.post("/{job_id}/rate", response_model=JobDetail, responses=ERRORS, summary="Change rate")
def rate(job_id: JobIdDep, body: RateChange, ctx: ContextDep, _: SubmitDep) -> JobDetail:
    """Change the job's rates, on the running transfer too."""
    control.change_rate(
        ctx, job_id, target_rate_kbps=body.target_rate_kbps, min_rate_kbps=body.min_rate_kbps
    )
    return job_detail(ctx, job_id)


@router.post(
    "/{job_id}/acknowledge",
    response_model=JobDetail,
    responses=ERRORS,
    summary="Acknowledge a failure",
)
def acknowledge(job_id: JobIdDep, ctx: ContextDep, caller: SubmitDep) -> JobDetail:
    """Mark a failed or flagged job as seen: the dashboard's verdict stops counting it (until
    a retry fails again). Acknowledging twice changes nothing."""
    control.acknowledge_job(ctx, job_id, caller.name)
    return job_detail(ctx, job_id)


@router.post(
    "/{job_id}/priority", response_model=JobDetail, responses=ERRORS, summary="Change priority"
)
def priority(job_id: JobIdDep, body: PriorityChange, ctx: ContextDep, _: SubmitDep) -> JobDetail:
    """Change the job's priority."""
    control.change_priority(ctx, job_id, body.priority)
    return job_detail(ctx, job_id)
