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
from orchestrator.services.alerts import known_channels
from orchestrator.services.dryrun import dry_run
from orchestrator.services.replication import (
    ScheduleView,
    list_schedule_views,
    run_now,
    schedule_view,
)
from orchestrator.services.schedules import (
    create_schedule,
    delete_schedule,
    editable,
    get_schedule,
    set_enabled,
    spec_of,
    update_schedule,
)

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
    with ctx.sessions() as session:
        row = get_schedule(session, schedule_id)
        return _out(schedule_view(session, row, ctx.now(), history=runs))


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
    with ctx.sessions() as session:
        create_schedule(session, spec, now=ctx.now(), channels=known_channels(ctx.settings))
        session.commit()
    return _show(ctx, spec.id)


@router.get("", response_model=ScheduleList, responses=ERRORS, summary="List schedules")
def list_all(ctx: ContextDep, _: ReadDep) -> ScheduleList:
    """Every schedule with its health, last and next run, and its last five runs."""
    with ctx.sessions() as session:
        views = list_schedule_views(session, ctx.now())
        return ScheduleList(items=[_out(v) for v in views])


@router.get("/{schedule_id}", response_model=ScheduleOut, responses=ERRORS, summary="Show")
def show(schedule_id: str, ctx: ContextDep, _: ReadDep, runs: History = 20) -> ScheduleOut:
    """A schedule with its history: each run's state, bytes and files moved."""
    return _show(ctx, schedule_id, runs)


@router.patch("/{schedule_id}", response_model=ScheduleOut, responses=ERRORS, summary="Change")
def change(schedule_id: str, body: ScheduleUpdate, ctx: ContextDep, _: SubmitDep) -> ScheduleOut:
    """Change some fields; a new timing counts its slots from now."""
    patch = body.model_dump(exclude_unset=True)
    with ctx.sessions() as session:
        row = editable(get_schedule(session, schedule_id))
        merged = spec_of(session, row).model_dump()
        if "cron" in patch and "interval_seconds" not in patch:
            merged["interval_seconds"] = None
        if "interval_seconds" in patch and "cron" not in patch:
            merged["cron"] = None
        spec = ScheduleSpec.model_validate({**merged, **patch})
        update_schedule(session, row, spec, now=ctx.now(), channels=known_channels(ctx.settings))
        session.commit()
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
    with ctx.sessions() as session:
        set_enabled(session, get_schedule(session, schedule_id), on, now=ctx.now())
        session.commit()
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
    with ctx.sessions() as session:
        delete_schedule(session, editable(get_schedule(session, schedule_id)))
        session.commit()
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
