"""The Node API routes of one simulated node (FastAPI)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import QueryParams

from hstssim import admin, feed, files, quirks, setup, views
from hstssim.auth import Principal, authenticate
from hstssim.context import NodeContext
from hstssim.manager import TransferManager
from hstssim.model import Transfer
from hstssim.nodeinfo import node_info
from hstssim.responses import JSON_TYPE, ApiError, empty, install_handlers, read_json
from hstssim.spec import RATE_POLICIES, SpecError, as_int, parse_transfer_spec

INVALID_TOKEN = "Invalid iteration_token"  # noqa: S105 - a message, not a secret
# Tokens that mean "the beginning of the log": IBM's polling loop starts at 1 (node-api.md §4.1).
BEGINNING_TOKENS = (0, 1)
LOGGING_DISABLED = "Transfer activity logging disabled"
PAUSE = ("paused",)
RESUME = ("running", "resume")
CANCEL = ("canceled", "cancelled", "stopped")


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Return a JSON response with the content type real nodes send."""
    return JSONResponse(body, status_code=status, headers=headers, media_type=JSON_TYPE)


def _int_param(query: QueryParams, name: str, default: int, minimum: int) -> int:
    """Read an integer query parameter."""
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return as_int(raw, name, minimum)
    except SpecError as exc:
        raise ApiError(400, f"Invalid {name}") from exc


def _object(body: Any) -> dict[str, Any]:
    """Require a JSON object body."""
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object")
    return body


class NodeApi:
    """Handlers of the Node API, bound to one node's state."""

    def __init__(self, ctx: NodeContext, manager: TransferManager) -> None:
        self.ctx = ctx
        self.manager = manager

    def principal(self, request: Request, allow_bearer: bool = True) -> Principal:
        """Return the caller, or answer 401."""
        principal = authenticate(self.ctx.config, request.headers, allow_bearer)
        if principal is None:
            raise ApiError(401, "Authentication failed: invalid or missing credentials")
        return principal

    def render(self, transfer: Transfer) -> Response:
        """Return one transfer object."""
        return _json(views.transfer(transfer, self.ctx.config.node_id))

    def transfer(self, transfer_id: str) -> Transfer:
        """Return a transfer the node still holds, or answer 404."""
        self.ctx.prune()
        found = self.ctx.store.get(transfer_id)
        if found is None:
            raise ApiError(404, f"Transfer {transfer_id} not found")
        return found

    async def setup(self, request: Request, kind: str) -> Response:
        """Answer upload_setup or download_setup."""
        self.principal(request)
        body = _object(await read_json(request))
        requests = body.get("transfer_requests")
        if not isinstance(requests, list) or not requests:
            raise ApiError(400, "transfer_requests must be a non-empty array")
        return _json(setup.answer(self.ctx, kind, requests))

    async def start(self, request: Request) -> Response:
        """POST /ops/transfers: queue a transfer and return it (status waiting)."""
        principal = self.principal(request)
        body = await read_json(request)
        try:
            spec = parse_transfer_spec(body)
        except SpecError as exc:
            raise ApiError(400, str(exc)) from exc
        transfer = self.manager.create(spec, body, principal.access_key)
        if self.ctx.faults.take("spec_echo") is not None:
            return _json(quirks.spec_echo(transfer, body))
        return self.render(transfer)

    def listing(self, request: Request) -> Response:
        """GET /ops/transfers: a page of the change feed, with the next token in Link."""
        self.principal(request)
        if not self.ctx.config.activity_logging:
            raise ApiError(404, LOGGING_DISABLED)
        query = request.query_params
        after = self._iteration_token(query.get("iteration_token"))
        count = _int_param(query, "count", 100, 1)
        max_items = _int_param(query, "max_items", 1000, 0)
        view = query.get("view") or None
        if view is not None and view not in views.VIEWS:
            raise ApiError(400, "Invalid view")
        try:
            active = query.get("active_only")
            tag = query.get("tag")
            after_time = query.get("after_time")
            accept = feed.build(
                active_only=None if active is None else feed.parse_bool(active, "active_only"),
                direction=query.get("direction"),
                tag=feed.TagFilter.parse(tag) if tag else None,
                after_time=feed.parse_time(after_time) if after_time else None,
                access_key=query.get("access_key"),
            )
        except feed.FilterError as exc:
            raise ApiError(400, str(exc)) from exc
        self.ctx.prune()
        found, next_token = self.ctx.store.page(after, count, accept)
        found, next_token = quirks.shape_page(
            self.ctx.faults, self.ctx.store, after, found, next_token, count, accept
        )
        budget = [max_items]
        body = [views.transfer(t, self.ctx.config.node_id, view, budget) for t in found]
        headers = {
            "Link": f'<{self.ctx.api_url}/ops/transfers?iteration_token={next_token}>; rel="next"'
        }
        origin = request.headers.get("origin")
        if origin:
            headers["Access-Control-Allow-Origin"] = origin
            headers["Access-Control-Expose-Headers"] = "Link"
        return _json(body, headers=headers)

    def _iteration_token(self, raw: str | None) -> int | None:
        """Return where the feed starts (None: the beginning); 400 for a token not accepted."""
        if raw is None or raw == "":
            return None
        if self.ctx.faults.take("invalid_iteration_token") is not None:
            raise ApiError(400, INVALID_TOKEN)
        try:
            token = int(raw)
        except ValueError as exc:
            raise ApiError(400, INVALID_TOKEN) from exc
        if self.ctx.store.valid_token(token):
            return token
        if token in BEGINNING_TOKENS:
            return None
        raise ApiError(400, INVALID_TOKEN)

    async def modify(self, request: Request, transfer_id: str) -> Response:
        """PUT /ops/transfers/{id}: pause, resume, cancel, or change rates."""
        self.principal(request)
        body = _object(await read_json(request))
        transfer = self.transfer(transfer_id)
        status = body.get("status")
        if status is not None and status not in (*PAUSE, *RESUME, *CANCEL):
            raise ApiError(400, f"Invalid status {status!r}")
        policy = body.get("rate_policy")
        if policy is not None and policy not in RATE_POLICIES:
            raise ApiError(400, f"rate_policy must be one of {', '.join(RATE_POLICIES)}")
        rates = {}
        for name in ("target_rate_kbps", "min_rate_kbps"):
            if body.get(name) is not None:
                try:
                    rates[name] = as_int(body[name], name)
                except SpecError as exc:
                    raise ApiError(400, str(exc)) from exc
        if rates or policy is not None:
            self.manager.set_rates(
                transfer, rates.get("target_rate_kbps"), rates.get("min_rate_kbps"), policy
            )
        if status in PAUSE:
            self.manager.pause(transfer)
        elif status in RESUME:
            self.manager.resume(transfer)
        elif status in CANCEL:
            await self.manager.cancel(transfer)
        return self.render(transfer)

    async def cancel(self, request: Request, transfer_id: str) -> Response:
        """CANCEL /ops/transfers/{id}: cancel, 204 with no body."""
        self.principal(request)
        await self.manager.cancel(self.transfer(transfer_id))
        return empty(204)

    async def browse(self, request: Request) -> Response:
        """POST /files/browse (Basic auth only)."""
        self.principal(request, allow_bearer=False)
        body = _object(await read_json(request))
        try:
            return _json(files.browse(self.ctx.config.docroot, body))
        except files.PathProblem as problem:
            raise ApiError(problem.code, problem.user_message) from problem

    async def info(self, request: Request) -> Response:
        """POST /files/info (Basic auth only)."""
        self.principal(request, allow_bearer=False)
        body = _object(await read_json(request))
        try:
            return _json(files.info(self.ctx.config.docroot, body))
        except files.PathProblem as problem:
            raise ApiError(problem.code, problem.user_message) from problem


def create_app(ctx: NodeContext, manager: TransferManager) -> FastAPI:
    """Return the FastAPI app of one node: the Node API plus /admin."""
    app = FastAPI(
        title=f"hstssim {ctx.config.name}", docs_url=None, redoc_url=None, openapi_url=None
    )
    install_handlers(app)
    api = NodeApi(ctx, manager)

    @app.get("/ping")
    async def ping() -> Response:
        return empty(200)

    @app.get("/info")
    async def info(request: Request) -> Response:
        api.principal(request)
        return _json(node_info(ctx))

    @app.post("/files/upload_setup")
    async def upload_setup(request: Request) -> Response:
        return await api.setup(request, "upload")

    @app.post("/files/download_setup")
    async def download_setup(request: Request) -> Response:
        return await api.setup(request, "download")

    @app.post("/files/browse")
    async def browse(request: Request) -> Response:
        return await api.browse(request)

    @app.post("/files/info")
    async def files_info(request: Request) -> Response:
        return await api.info(request)

    @app.post("/ops/transfers")
    async def start_transfer(request: Request) -> Response:
        return await api.start(request)

    @app.get("/ops/transfers")
    async def list_transfers(request: Request) -> Response:
        return api.listing(request)

    @app.get("/ops/transfers/{id}")
    async def get_transfer(request: Request, id: str) -> Response:
        api.principal(request)
        return api.render(api.transfer(id))

    @app.put("/ops/transfers/{id}")
    async def modify_transfer(request: Request, id: str) -> Response:
        return await api.modify(request, id)

    @app.api_route("/ops/transfers/{id}", methods=["CANCEL"])
    async def cancel_transfer(request: Request, id: str) -> Response:
        return await api.cancel(request, id)

    app.include_router(admin.create_router(ctx, manager))
    return app
