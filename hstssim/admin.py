"""The admin API under /admin (X-Admin-Token only): counters, transfers, faults, settings,
link capacities and other clients' transfers."""

from __future__ import annotations

import hmac
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from hstssim import capacity, foreign, views
from hstssim.config import RUNTIME_SETTINGS
from hstssim.context import NodeContext
from hstssim.faults import FaultError
from hstssim.manager import TransferManager
from hstssim.model import Transfer
from hstssim.responses import ApiError, empty, read_json
from hstssim.spec import SpecError


def _check(ctx: NodeContext, request: Request) -> None:
    """Refuse the request unless it carries the node's admin token."""
    given = request.headers.get("x-admin-token", "")
    if not given or not hmac.compare_digest(given.encode(), ctx.config.admin_token.encode()):
        raise ApiError(401, "Admin token required (X-Admin-Token)")


def _settings(ctx: NodeContext) -> dict[str, Any]:
    """Return the settings that may change at run time."""
    return {name: getattr(ctx.config, name) for name in RUNTIME_SETTINGS}


def _setting_value(name: str, value: Any) -> Any:
    """Check one new setting value against its type."""
    kind = RUNTIME_SETTINGS.get(name)
    if kind is None:
        raise ApiError(400, f"Unknown setting {name!r}; known: {', '.join(RUNTIME_SETTINGS)}")
    if kind is bool:
        if not isinstance(value, bool):
            raise ApiError(400, f"{name} must be a boolean")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ApiError(400, f"{name} must be a non-negative number")
    if kind is int and not float(value).is_integer():
        raise ApiError(400, f"{name} must be an integer")
    return kind(value)


def create_router(ctx: NodeContext, manager: TransferManager) -> APIRouter:
    """Return the admin routes of one node."""
    router = APIRouter(prefix="/admin")

    @router.get("/counters")
    async def counters(request: Request) -> Response:
        _check(ctx, request)
        return JSONResponse(ctx.counters.snapshot())

    @router.post("/counters/reset")
    async def reset_counters(request: Request) -> Response:
        _check(ctx, request)
        ctx.counters.reset()
        return JSONResponse(ctx.counters.snapshot())

    def shown(transfer: Transfer) -> dict[str, Any]:
        """A transfer as the admin API shows it: the node's view plus its raw spec."""
        return {
            **views.transfer(transfer, ctx.config.node_id),
            "raw_spec": transfer.raw_spec,
            "in_activity_log": transfer.last_seq is not None,
        }

    @router.get("/transfers")
    async def transfers(request: Request) -> Response:
        _check(ctx, request)
        ctx.prune()
        return JSONResponse([shown(t) for t in ctx.store])

    @router.get("/faults")
    async def list_faults(request: Request) -> Response:
        _check(ctx, request)
        return JSONResponse(ctx.faults.list())

    @router.post("/faults")
    async def add_fault(request: Request) -> Response:
        _check(ctx, request)
        try:
            fault = ctx.faults.add(await read_json(request))
        except FaultError as exc:
            raise ApiError(400, str(exc)) from exc
        return JSONResponse(fault.to_json(), status_code=201)

    @router.delete("/faults")
    async def clear_faults(request: Request) -> Response:
        _check(ctx, request)
        return JSONResponse({"cleared": ctx.faults.clear()})

    @router.delete("/faults/{fault_id}")
    async def remove_fault(request: Request, fault_id: str) -> Response:
        _check(ctx, request)
        if not ctx.faults.remove(fault_id):
            raise ApiError(404, "No such fault")
        return empty(204)

    @router.post("/restart")
    async def restart(request: Request) -> Response:
        _check(ctx, request)
        body = await read_json(request) if await request.body() else {}
        keep = isinstance(body, dict) and body.get("keep_history") is True
        # What the restart forgets, listed in the same step (no transfer can end in between).
        forgotten = [] if keep else [shown(t) for t in ctx.store if t.is_terminal]
        ctx.store.restart(keep_history=keep)
        return JSONResponse({"iteration_token": ctx.store.base_token, "forgotten": forgotten})

    @router.post("/expire")
    async def expire(request: Request) -> Response:
        _check(ctx, request)
        body = await read_json(request)
        age = body.get("older_than_seconds") if isinstance(body, dict) else None
        if isinstance(age, bool) or not isinstance(age, int | float) or age < 0:
            raise ApiError(400, "older_than_seconds must be a non-negative number")
        return JSONResponse({"expired": ctx.store.drop_ended_before(time.time() - age)})

    @router.get("/settings")
    async def get_settings(request: Request) -> Response:
        _check(ctx, request)
        return JSONResponse(_settings(ctx))

    @router.put("/settings")
    async def put_settings(request: Request) -> Response:
        _check(ctx, request)
        body = await read_json(request)
        if not isinstance(body, dict):
            raise ApiError(400, "Body must be an object of settings")
        changes = {name: _setting_value(name, value) for name, value in body.items()}
        for name, value in changes.items():
            setattr(ctx.config, name, value)
        return JSONResponse(_settings(ctx))

    @router.get("/network")
    async def get_network(request: Request) -> Response:
        _check(ctx, request)
        return JSONResponse(ctx.network.snapshot())

    @router.put("/network")
    async def put_network(request: Request) -> Response:
        _check(ctx, request)
        try:
            links, nodes = capacity.parse(
                await read_json(request), ctx.config.name, ctx.network.knows
            )
        except SpecError as exc:
            raise ApiError(400, str(exc)) from exc
        capacity.apply(ctx.network, links, nodes)
        return JSONResponse(ctx.network.snapshot())

    def peer(name: str) -> tuple[str, int] | None:
        """Return another node's (host, fasp_port), or None if it is not on the network."""
        address = ctx.network.address(name)
        if address is None or name == ctx.config.name:
            return None
        # The cluster's nodes share one host; nothing connects there (the load moves no bytes).
        return ctx.config.advertise_host or ctx.config.host, address.fasp_port

    @router.post("/foreign_transfers")
    async def start_foreign(request: Request) -> Response:
        _check(ctx, request)
        body = await read_json(request)
        try:
            asked = foreign.parse(body, peer)
        except SpecError as exc:
            raise ApiError(400, str(exc)) from exc
        transfer = manager.create(asked.spec, body, None, asked.load)
        return JSONResponse(shown(transfer), status_code=201)

    return router
