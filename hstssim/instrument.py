"""ASGI wrapper of the Node API: counts requests per "METHOD /template" and applies faults."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import Message, Receive, Scope, Send

from hstssim.connection import close_unanswered
from hstssim.context import NodeContext
from hstssim.faults import (
    CloseConnection,
    ContentType,
    Empty200,
    EmptyError,
    Hang,
    HttpError,
    Restart,
)
from hstssim.responses import JSON_TYPE, error_response

UNROUTED = "(unrouted)"


def is_admin(path: str) -> bool:
    """Tell whether a path belongs to the admin API."""
    return path == "/admin" or path.startswith("/admin/")


def route_key(app: FastAPI, scope: Scope) -> str:
    """Return "METHOD /template" of the route the request (even partly) matches."""
    partial: str | None = None
    for route in app.router.routes:
        match, _ = route.matches(scope)
        path = str(getattr(route, "path", UNROUTED))
        if match == Match.FULL:
            return f"{scope['method']} {path}"
        if match == Match.PARTIAL and partial is None:
            partial = path
    return f"{scope['method']} {partial or UNROUTED}"


def endpoint_keys(app: FastAPI) -> set[str]:
    """Return every "METHOD /template" the Node API serves."""
    keys: set[str] = set()
    for route in app.router.routes:
        path = str(getattr(route, "path", ""))
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD" and not is_admin(path):
                keys.add(f"{method} {path}")
    return keys


async def _read_body(receive: Receive) -> bytes:
    """The whole request body."""
    body = b""
    while True:
        message = await receive()
        body += bytes(message.get("body", b""))
        if not message.get("more_body", False):
            return body


def _replay(body: bytes) -> Receive:
    """A receive that hands over ``body`` again."""

    async def replayed() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


def _echo(fault: HttpError, scope: Scope, body: bytes) -> Response:
    """The error of a node that repeats what it was sent: header and body, secrets included."""
    headers = dict(scope.get("headers", []))
    authorization = headers.get(b"authorization", b"").decode("latin-1")
    request = f"{scope['method']} {scope['path']} Authorization: {authorization} {body.decode()}"
    return error_response(fault.status, f"Simulated fault: invalid request: {request}")


def fault_response(fault: HttpError | EmptyError | Empty200) -> Response:
    """Return what an endpoint fault that answers in place of the node answers."""
    if isinstance(fault, HttpError):
        return error_response(fault.status, "Simulated fault")
    if isinstance(fault, EmptyError):
        return Response(content=b"{}", status_code=fault.status, media_type=JSON_TYPE)
    assert isinstance(fault, Empty200)
    return Response(content=b"", status_code=200, media_type=JSON_TYPE)


class NodeApiGate:
    """Wraps the FastAPI app of one node."""

    def __init__(self, app: FastAPI, ctx: NodeContext) -> None:
        self.app = app
        self._ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count the request, then serve it or let a fault answer instead."""
        if scope["type"] != "http" or is_admin(scope["path"]):
            await self.app(scope, receive, send)
            return
        key = route_key(self.app, scope)
        self._ctx.counters.requests[key] += 1
        fault = self._ctx.faults.take_endpoint(key)
        if fault is None:
            await self.app(scope, receive, send)
        elif isinstance(fault, Hang):
            await self._hang(fault, scope, receive, send)
        elif isinstance(fault, ContentType):
            await self.app(scope, receive, _retyped(send, fault.content_type))
        elif isinstance(fault, Restart):
            await self._restart(fault, scope, receive, send)
        elif isinstance(fault, CloseConnection):
            if fault.after_effect:
                await self._silently(scope, receive)
            else:
                # closing with body bytes still unread makes the kernel reset the connection
                # (ECONNRESET) instead of ending it (EOF); a node that drops a request ends it
                await _read_body(receive)
            await close_unanswered(scope, receive)
        elif isinstance(fault, HttpError) and fault.echo_request:
            body = await _read_body(receive)
            if fault.after_effect:
                await self._silently(scope, _replay(body))
            await _echo(fault, scope, body)(scope, _replay(b""), send)
        else:
            if fault.after_effect:
                await self._silently(scope, receive)
            await fault_response(fault)(scope, receive, send)

    async def _restart(self, fault: Restart, scope: Scope, receive: Receive, send: Send) -> None:
        """Restart the node, then serve; with after_effect the answer predates the restart."""
        if not fault.after_effect:
            self._ctx.store.restart(keep_history=fault.keep_history)
            await self.app(scope, receive, send)
            return
        messages = await self._silently(scope, receive)
        self._ctx.store.restart(keep_history=fault.keep_history)
        for message in messages:
            await send(message)

    async def _hang(self, fault: Hang, scope: Scope, receive: Receive, send: Send) -> None:
        """Sleep before answering; with after_effect the work is done before the sleep."""
        if not fault.after_effect:
            await asyncio.sleep(fault.seconds)
            await self.app(scope, receive, send)
            return
        messages = await self._silently(scope, receive)
        await asyncio.sleep(fault.seconds)
        for message in messages:
            await send(message)

    async def _silently(self, scope: Scope, receive: Receive) -> list[Message]:
        """Serve the request and keep the answer instead of sending it."""
        messages: list[Message] = []

        async def keep(message: Message) -> None:
            messages.append(message)

        await self.app(scope, receive, keep)
        return messages


def _retyped(send: Send, content_type: str) -> Send:
    """Return a send that answers with this Content-Type instead of the app's."""

    async def retyped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [
                (k, v) for k, v in message.get("headers", []) if k.lower() != b"content-type"
            ]
            message = {**message, "headers": [*headers, (b"content-type", content_type.encode())]}
        await send(message)

    return retyped
