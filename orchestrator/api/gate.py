"""What every request passes before a route reads it: a body size limit per route, and the
API token checked before the body of an /api/v1 write is read.

FastAPI reads and parses a route's whole body before its dependencies run, so without this a
client with no token could make the API hold a 200 MB body (and its parsed JSON) in memory
only to be told 401. The gate answers from the headers alone when it can (a missing or
invalid token: 401; a Content-Length over the route's limit: 413), and counts the bytes of a
body sent without a length, refusing it with 413 as soon as it passes the limit. An early
answer closes the connection: the rest of the body is never read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.services.context import ServiceContext
from orchestrator.services.tokens import Caller, authenticate

KIB = 1024
MIB = 1024 * KIB
API_MAX_BODY = 1 * MIB  # a job with 1000 paths fits; nothing the API takes is larger
FORM_MAX_BODY = 4 * KIB  # the sign-in and sign-out forms: a token at most
OTHER_MAX_BODY = 4 * KIB  # the dashboard, health and metrics take no body at all

# Routes that take no token (or their own): the gate leaves their authentication alone.
OPEN_API_PATHS = ("/api/v1/openapi.json", "/api/v1/docs")
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
UNAUTHORIZED = "give a valid API token: Authorization: Bearer <token>"
CALLER = "caller"  # request.state.caller: the token the gate already checked


def body_limit(path: str) -> int:
    """The largest body, in bytes, a request to ``path`` may carry."""
    if path.startswith("/api/"):
        return API_MAX_BODY
    if path.startswith("/dashboard/"):
        return FORM_MAX_BODY
    return OTHER_MAX_BODY


def too_large_message(limit: int) -> str:
    """What a 413 says."""
    size = f"{limit // MIB} MiB" if limit >= MIB else f"{limit // KIB} KiB"
    return f"the request body is larger than this route accepts ({size})"


@dataclass(frozen=True)
class _Head:
    """What the gate reads from a request's headers."""

    length: int | None  # Content-Length, when given
    chunked: bool
    bearer: str | None

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.length)


def _head(scope: Scope) -> _Head:
    length: int | None = None
    chunked = False
    bearer: str | None = None
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                length = None
        elif name == b"transfer-encoding":
            chunked = True
        elif name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                bearer = token.strip()
    return _Head(length, chunked, bearer)


async def _answer(
    send: Send, status: int, message: str, *, close: bool, headers: dict[str, str] | None = None
) -> None:
    body = json.dumps({"error": message}).encode()
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items()),
    ]
    if close:
        raw.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class RequestGate:
    """ASGI middleware: body limits for every route, the token first for /api/v1 writes."""

    def __init__(self, app: ASGIApp, ctx: ServiceContext) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        head = _head(scope)
        limit = body_limit(path)
        if _needs_early_token(scope["method"], path):
            caller = await self._caller(head.bearer)
            if caller is None:
                await _answer(
                    send,
                    401,
                    UNAUTHORIZED,
                    close=head.has_body,
                    headers={"WWW-Authenticate": "Bearer"},
                )
                return
            scope.setdefault("state", {})[CALLER] = caller
        if head.length is not None and head.length > limit:
            await _answer(send, 413, too_large_message(limit), close=True)
            return
        await self.app(scope, _counting(receive, limit), send)

    async def _caller(self, presented: str | None) -> Caller | None:
        if presented is None:
            return None
        return await run_in_threadpool(authenticate, self.ctx, presented)


def _needs_early_token(method: str, path: str) -> bool:
    return method in WRITES and path.startswith("/api/v1/") and path not in OPEN_API_PATHS


def _counting(receive: Receive, limit: int) -> Receive:
    """A receive that refuses (413) a body once more than ``limit`` bytes arrived."""
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                # Raised inside the route's body read: FastAPI passes HTTPException through,
                # and the app's handler answers it (the connection closes: body left unread).
                raise HTTPException(413, too_large_message(limit), headers={"Connection": "close"})
        return message

    return counted
