"""The console's job pages: one page per job (with its files read from the node on demand),
and a search over all jobs. Read scope is enough to see them; buttons show for submit scope."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, Response

from orchestrator.api import render
from orchestrator.api.deps import ContextDep
from orchestrator.api.downloads import csv_download
from orchestrator.api.web import (
    REFRESH_MS,
    caller_of,
    console_page,
    csrf_token,
    html,
    not_signed_in,
    presented,
    sign_in_page,
)
from orchestrator.domain.states import JobState
from orchestrator.services.context import ServiceContext
from orchestrator.services.conveyor.jobs import JobNotFound, JobRejected
from orchestrator.services.tokens import Scope
from orchestrator.services.views.job_files import job_files
from orchestrator.services.views.job_progress import job_progress
from orchestrator.services.views.jobs import (
    BadCursor,
    JobFilter,
    find_jobs,
    resolve_job_id,
    show_job,
)
from orchestrator.services.views.nodes import list_nodes
from orchestrator.services.views.stored_files import stored_files

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
CHECKSUMS_SHOWN = 50  # the rest is in the CSV export
NO_SUCH_JOB = "No such job"


def _job_page(
    request: Request, ctx: ServiceContext, given: str, *, files_offset: int | None = None
) -> HTMLResponse:
    caller = caller_of(request, ctx)
    if caller is None:
        return sign_in_page(request)
    try:
        job_id = resolve_job_id(ctx, given)
    except JobNotFound as exc:
        return console_page(
            request,
            ctx,
            caller,
            "notice.html",
            status.HTTP_404_NOT_FOUND,
            heading=NO_SUCH_JOB,
            text=exc,
        )
    except JobRejected as exc:
        code = status.HTTP_422_UNPROCESSABLE_CONTENT
        return console_page(
            request, ctx, caller, "notice.html", code, heading=NO_SUCH_JOB, text=exc
        )
    job = show_job(ctx, job_id)
    files = None if files_offset is None else job_files(ctx, job_id, offset=files_offset)
    return console_page(
        request,
        ctx,
        caller,
        "job.html",
        job=job,
        files=files,
        checksums=stored_files(ctx, job_id, limit=CHECKSUMS_SHOWN),
        over_time=job_progress(ctx, job_id),
        refresh_ms=REFRESH_MS,
    )


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(job_id: str, request: Request, ctx: ContextDep) -> HTMLResponse:
    """One job: route, state, progress, the node's error and what to do, attempts, events."""
    return _job_page(request, ctx, job_id)


@router.get("/jobs/{job_id}/files", response_class=HTMLResponse)
def job_files_page(
    job_id: str,
    request: Request,
    ctx: ContextDep,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> HTMLResponse:
    """The job page with one page of its files, as the source node lists them now."""
    return _job_page(request, ctx, job_id, files_offset=offset)


@router.get("/jobs/{job_id}/files.csv", response_model=None)
def job_files_csv(job_id: str, request: Request, ctx: ContextDep) -> Response:
    """The job's stored files and checksums, as a CSV download."""
    if caller_of(request, ctx) is None:
        raise not_signed_in()
    try:
        full_id = resolve_job_id(ctx, job_id)
    except JobNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except JobRejected as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return csv_download(ctx, full_id)


@router.get("/jobs/{job_id}/live", response_class=HTMLResponse)
def job_live(job_id: str, request: Request, ctx: ContextDep) -> HTMLResponse:
    """The parts of a job's page that change (state, progress and its chart, the problem,
    attempts, timeline, and the actions): what the page's script fetches every few seconds."""
    caller = caller_of(request, ctx)
    if caller is None:
        raise not_signed_in()
    try:
        full_id = resolve_job_id(ctx, job_id)
        job = show_job(ctx, full_id)
        over_time = job_progress(ctx, full_id)
    except JobNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except JobRejected as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    body = render.page(
        "job_live.html",
        job=job,
        over_time=over_time,
        can_act=caller.allows(Scope.SUBMIT),
        csrf=csrf_token(presented(request) or ""),
        now=ctx.now(),
    )
    return html(body)


# -- search ------------------------------------------------------------------------------------


@dataclass
class Search:
    """The search form as given, and what it means as a filter (or what is wrong with it)."""

    states: list[str] = field(default_factory=list)
    node: str = ""
    label: str = ""
    path: str = ""
    created_after: str = ""
    created_before: str = ""
    cursor: str = ""
    problems: list[str] = field(default_factory=list)

    def query(self, **changes: str) -> str:
        """The query string of this search (with ``changes``), for links to other pages."""
        values = {
            "state": self.states,
            "node": self.node,
            "label": self.label,
            "path": self.path,
            "created_after": self.created_after,
            "created_before": self.created_before,
            "cursor": self.cursor,
            **changes,
        }
        return urlencode({k: v for k, v in values.items() if v}, doseq=True)

    def where(self) -> JobFilter:
        """The filter, once ``problems`` is empty."""
        label = tuple(self.label.split("=", 1)) if self.label else None
        return JobFilter(
            states=tuple(self.states),
            node=self.node or None,
            label=(label[0], label[1]) if label else None,
            path=self.path or None,
            created_after=_moment(self.created_after),
            created_before=_moment(self.created_before),
        )


def _moment(value: str) -> datetime | None:
    """A time from the form (the browser's datetime-local, read as UTC)."""
    if not value:
        return None
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def read_search(request: Request) -> Search:
    """The search form from the query string, each wrong field named with its reason."""
    query = request.query_params
    form = Search(
        states=[s for s in query.getlist("state") if s],
        node=query.get("node", "").strip(),
        label=query.get("label", "").strip(),
        path=query.get("path", "").strip(),
        created_after=query.get("created_after", "").strip(),
        created_before=query.get("created_before", "").strip(),
        cursor=query.get("cursor", "").strip(),
    )
    known = {s.value for s in JobState}
    form.problems += [f"state: {s} is not a job state" for s in form.states if s not in known]
    if form.label and ("=" not in form.label or form.label.startswith("=")):
        form.problems.append("label: write it as key=value")
    for name in ("node", "label", "path", "cursor"):
        if len(getattr(form, name)) > 1024:
            form.problems.append(f"{name}: at most 1024 characters")
    for name in ("created_after", "created_before"):
        try:
            _moment(getattr(form, name))
        except ValueError:
            form.problems.append(f"{name}: not a date and time (YYYY-MM-DD HH:MM, UTC)")
    return form


@router.get("/jobs", response_class=HTMLResponse)
def search_page(request: Request, ctx: ContextDep) -> HTMLResponse:
    """Every job, newest first, narrowed by state, node, label, path and creation time."""
    caller = caller_of(request, ctx)
    if caller is None:
        return sign_in_page(request)
    search = read_search(request)
    page = None
    if not search.problems:
        try:
            page = find_jobs(ctx, search.where(), limit=PAGE_SIZE, cursor=search.cursor or None)
        except BadCursor:
            search.problems.append("cursor: not a page of this search; start again")
    code = status.HTTP_422_UNPROCESSABLE_CONTENT if search.problems else status.HTTP_200_OK
    nodes = [n.name for n in list_nodes(ctx)]
    return console_page(
        request, ctx, caller, "jobs.html", code, search=search, page=page, nodes=nodes
    )
