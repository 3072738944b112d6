"""The API port's HTTP protocol: uvicorn's h11 one, letting a request reach its connection."""

# ASGI gives an app no way to close the connection without answering: returning without a
# response makes uvicorn send a 500. The close_connection fault needs exactly that, so each
# request's scope carries its transport under TRANSPORT_KEY.

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

TRANSPORT_KEY = "hstssim.transport"


class TransportH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, putting the connection's transport into every request's scope."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Remember the transport for the requests of this connection."""
        super().connection_made(transport)
        app: ASGIApp = self.app

        async def with_transport(scope: Scope, receive: Receive, send: Send) -> None:
            scope.setdefault("extensions", {})[TRANSPORT_KEY] = transport
            await app(scope, receive, send)

        self.app = with_transport


async def close_unanswered(scope: Scope, receive: Receive) -> None:
    """Close the request's connection without an answer, and wait until it is gone."""
    transport = (scope.get("extensions") or {}).get(TRANSPORT_KEY)
    if not isinstance(transport, asyncio.BaseTransport):
        raise RuntimeError("the API server does not expose its connections")
    transport.close()
    # uvicorn answers 500 for an app that returns unanswered while the client is still there
    while (await receive())["type"] != "http.disconnect":
        pass
