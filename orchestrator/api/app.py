"""create_app: the FastAPI application, with errors mapped to clear 4xx answers."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from orchestrator import __version__
from orchestrator.api.gate import RequestGate
from orchestrator.api.routes import (
    dashboard,
    health,
    job_actions,
    job_pages,
    jobs,
    links,
    maintenance,
    nodes,
    schedules,
    tokens,
)
from orchestrator.api.routes.metrics import router as metrics_router
from orchestrator.api.schemas import UNION_TAGS
from orchestrator.errors import ConfigError, NodeConfigurationError, NodeError
from orchestrator.logsetup import redact
from orchestrator.services.context import ServiceContext
from orchestrator.services.conveyor.jobs import JobNotFound, JobRejected, KeyReused
from orchestrator.services.conveyor.linkbudgets import NoLinkBudget
from orchestrator.services.conveyor.transitions import InvalidTransition
from orchestrator.services.nodes.clients import NodeNotRegistered
from orchestrator.services.nodes.maintenance import WindowNotFound
from orchestrator.services.nodes.registry import NodeInUse
from orchestrator.services.schedules.store import ScheduleNotFound, ScheduleRejected
from orchestrator.services.tokens import TokenNotFound

log = logging.getLogger(__name__)

DESCRIPTION = """
Queue server-to-server transfers between IBM Aspera HSTS nodes and follow them.

Every route but `/healthz` and `/readyz` needs `Authorization: Bearer <token>` with a token
made by `hsts-orchestrator token create`. Scopes: `read` < `submit` < `admin`.
"""


def create_app(ctx: ServiceContext) -> FastAPI:
    """The API over these services."""
    app = FastAPI(
        title="hsts-orchestrator",
        version=__version__,
        description=DESCRIPTION,
        openapi_url="/api/v1/openapi.json",
        # Swagger UI loads its scripts from a CDN: only when the operator asks (ORCH_API_DOCS).
        docs_url="/api/v1/docs" if ctx.settings.api_docs else None,
        redoc_url=None,
    )
    app.state.ctx = ctx
    app.add_middleware(RequestGate, ctx=ctx)
    app.include_router(jobs.router)
    app.include_router(nodes.router)
    app.include_router(maintenance.router)
    app.include_router(links.router)
    app.include_router(schedules.router)
    app.include_router(tokens.router)
    app.include_router(health.router)
    app.include_router(metrics_router)
    app.include_router(dashboard.router)
    app.include_router(job_pages.router)
    app.include_router(job_actions.router)
    _error_handlers(app)
    return app


# The first matching class decides; subclasses come before their bases.
STATUS_OF: tuple[tuple[type[Exception], int], ...] = (
    (KeyReused, status.HTTP_409_CONFLICT),
    (JobRejected, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (ScheduleRejected, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (ScheduleNotFound, status.HTTP_404_NOT_FOUND),
    (JobNotFound, status.HTTP_404_NOT_FOUND),
    (NodeNotRegistered, status.HTTP_404_NOT_FOUND),
    (WindowNotFound, status.HTTP_404_NOT_FOUND),
    (NoLinkBudget, status.HTTP_404_NOT_FOUND),
    (TokenNotFound, status.HTTP_404_NOT_FOUND),
    (InvalidTransition, status.HTTP_409_CONFLICT),
    (NodeInUse, status.HTTP_409_CONFLICT),
    (ConfigError, status.HTTP_409_CONFLICT),
    (NodeConfigurationError, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (NodeError, status.HTTP_502_BAD_GATEWAY),
    (ValueError, status.HTTP_422_UNPROCESSABLE_CONTENT),
)


def _answer(code: int, message: str, field: str | None = None) -> JSONResponse:
    # Error texts may quote a node (NodeError): masked like every log line and stored reason.
    body: dict[str, object] = {"error": redact(message)}
    if field is not None:
        body["field"] = field
    return JSONResponse(body, status_code=code)


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"error": redact(str(exc.detail))}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    @app.exception_handler(ValidationError)
    async def invalid(_: Request, exc: RequestValidationError | ValidationError) -> JSONResponse:
        detail = [
            {
                "field": ".".join(str(p) for p in e["loc"] if p != "body" and p not in UNION_TAGS),
                "reason": e["msg"].removeprefix("Value error, "),
            }
            for e in exc.errors()
        ]
        first = detail[0] if detail else {"field": None, "reason": "invalid request"}
        first = {**first, "field": first["field"] or None}
        return JSONResponse(
            {
                "error": f"{first['field']}: {first['reason']}"
                if first["field"]
                else first["reason"],
                "field": first["field"],
                "detail": detail,
            },
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )

    @app.exception_handler(DataError)
    async def unstorable(_: Request, exc: DataError) -> JSONResponse:
        # e.g. a NUL character, which PostgreSQL text cannot hold: bad input, not a crash.
        log.info("request refused by the database: %s", type(exc.orig).__name__)
        return _answer(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "a value cannot be stored (NUL or other characters the database refuses)",
        )

    async def known(_: Request, exc: Exception) -> JSONResponse:
        code = next(c for kind, c in STATUS_OF if isinstance(exc, kind))
        return _answer(code, str(exc), getattr(exc, "field", None))

    for kind, _code in STATUS_OF:
        app.add_exception_handler(kind, known)
