"""/api/v1/schedules: replication schedules, their runs, run-now and the dry run."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response, status

from orchestrator.api.deps import ContextDep, ReadDep, SubmitDep
from orchestrator.api.routes.jobs import job_detail
from orchestrator.api.schedule_schemas import (
    DryRunOut,
    ScheduleCreate,
    ScheduleList,
    ScheduleOut,
    ScheduleUpdate,
)
from orchestrator.api.schemas import JobDetail, error_responses
from orchestrator.domain.schedules import ScheduleSpec
from orchestrator.services.schedules.dryrun import dry_run
from orchestrator.services.schedules.runs import run_now
from orchestrator.services.schedules.store import (
    change_schedule,
    create_schedule,
    delete_schedule,
    set_enabled,
)
from orchestrator.services.views.schedules import ScheduleView, list_schedules, show_schedule

router = APIRouter(prefix="/api/v1/schedules", tags=["schedules"])

ERRORS = error_responses(
    {
        404: "no such schedule",
        409: "exists already, owned by the file, or a run is on",
        502: "a node did not answer the dry run",
    }
)

History = Annotated[int, Query(ge=0, le=500, description="how many recent runs to include")]


def _out(view: ScheduleView) -> ScheduleOut:
    fields: dict[str, Any] = {k: v for k, v in vars(view).items() if k not in ("spec",)}
    return ScheduleOut.model_validate(
        {
            **view.spec.model_dump(),
            **fields,
            "last_run": asdict(view.last_run) if view.last_run else None,
            "runs": [asdict(run) for run in view.runs],
        }
    )


def _show(ctx: ContextDep, schedule_id: str, runs: int = 20) -> ScheduleOut:
    return _out(show_schedule(ctx, schedule_id, history=runs))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ScheduleOut,
    responses=ERRORS,
    summary="Create a schedule",
)
def create(body: ScheduleCreate, ctx: ContextDep, _: SubmitDep) -> ScheduleOut:
    """Save a schedule; its first run is its first slot after now (or use run now)."""
    spec = ScheduleSpec.model_validate(body.model_dump())
    create_schedule(ctx, spec)
    return _show(ctx, spec.id)


@router.get("", response_model=ScheduleList, responses=ERRORS, summary="List schedules")
def list_all(ctx: ContextDep, _: ReadDep) -> ScheduleList:
    """Every schedule with its health, last and next run, and its last five runs."""
    return ScheduleList(items=[_out(v) for v in list_schedules(ctx)])


@router.get("/{schedule_id}", response_model=ScheduleOut, responses=ERRORS, summary="Show")
def show(schedule_id: str, ctx: ContextDep, _: ReadDep, runs: History = 20) -> ScheduleOut:
    """A schedule with its history: each run's state, bytes and files moved."""
    return _show(ctx, schedule_id, runs)


@router.patch("/{schedule_id}", response_model=ScheduleOut, responses=ERRORS, summary="Change")
def change(schedule_id: str, body: ScheduleUpdate, ctx: ContextDep, _: SubmitDep) -> ScheduleOut:
    """Change some fields; a new timing counts its slots from now."""
    change_schedule(ctx, schedule_id, body.model_dump(exclude_unset=True))
    return _show(ctx, schedule_id)


@router.post("/{schedule_id}/enable", response_model=ScheduleOut, responses=ERRORS)
def enable(schedule_id: str, ctx: ContextDep, _: SubmitDep) -> ScheduleOut:
    """Turn the schedule on; slots it missed while off do not run."""
    return _switch(ctx, schedule_id, True)


@router.post("/{schedule_id}/disable", response_model=ScheduleOut, responses=ERRORS)
def disable(schedule_id: str, ctx: ContextDep, _: SubmitDep) -> ScheduleOut:
    """Turn the schedule off; a run under way goes on."""
    return _switch(ctx, schedule_id, False)


def _switch(ctx: ContextDep, schedule_id: str, on: bool) -> ScheduleOut:
    set_enabled(ctx, schedule_id, on)
    return _show(ctx, schedule_id)


@router.delete(
    "/{schedule_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=ERRORS,
    summary="Delete",
)
def delete(schedule_id: str, ctx: ContextDep, _: SubmitDep) -> Response:
    """Delete the schedule; its runs stay (GET /api/v1/jobs?schedule=...)."""
    delete_schedule(ctx, schedule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{schedule_id}/run",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobDetail,
    responses=ERRORS,
    summary="Run now",
)
def run(
    schedule_id: str,
    ctx: ContextDep,
    response: Response,
    _: SubmitDep,
    idempotency_key: Annotated[
        str | None,
        Header(max_length=255, description="the same key returns the run it started first"),
    ] = None,
) -> JobDetail:
    """Start a run now (409 while a run of this schedule is still going)."""
    created = run_now(ctx, schedule_id, idempotency_key=idempotency_key)
    if not created.created:
        response.status_code = status.HTTP_200_OK
    return job_detail(ctx, created.job.id)


@router.post(
    "/{schedule_id}/dry-run", response_model=DryRunOut, responses=ERRORS, summary="Dry run"
)
def preview(schedule_id: str, ctx: ContextDep, _: ReadDep) -> DryRunOut:
    """List both sides through /files/browse and say what the next run would move."""
    return DryRunOut.model_validate(asdict(dry_run(ctx, schedule_id)))
