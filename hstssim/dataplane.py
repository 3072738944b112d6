"""The data plane: a TCP listener on the node's fasp_port, and the client's handshake."""

# Handshake: the client sends {"op":"hello","direction","token","remote_user",...}; the server
# checks the token (one this node issued, for its transfer user, the same direction, not
# expired), or the transfer user's SSH password or key and the pinned sshfp (sshlogin.py),
# and answers {"op":"welcome","server_node_id",...} or {"op":"refused","error_code",
# "error_desc"}. Then streams.py takes over: for direction "send" the client sends the files,
# for "receive" the server does.

from __future__ import annotations

import asyncio
import logging
import socket
import time
from dataclasses import dataclass
from typing import Any

from hstssim import errors_table as codes
from hstssim import paths, sources, sshlogin
from hstssim.auth import check_basic, check_bearer
from hstssim.context import NodeContext
from hstssim.errors_table import SessionFailure
from hstssim.pacing import Pacer
from hstssim.spec import PathPair
from hstssim.streams import NullProgress, ReceivePolicy, receive_items, send_items
from hstssim.tokens import TokenError
from hstssim.wire import Link, LinkClosed

log = logging.getLogger(__name__)
PROTOCOL = "hstssim-fasp/1"
CONNECT_TIMEOUT = 5.0


@dataclass(frozen=True)
class Grant:
    """What an authorised session may touch: destination prefixes and source prefixes."""

    destinations: tuple[str, ...]
    sources: tuple[str, ...]


def counted_link(
    ctx: NodeContext,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    drop_after: int | None,
) -> Link:
    """Return a link whose data bytes feed the node's bytes_sent and bytes_received."""

    def sent(nbytes: int) -> None:
        ctx.counters.bytes_sent += nbytes

    def received(nbytes: int) -> None:
        ctx.counters.bytes_received += nbytes

    return Link(reader, writer, drop_after, on_sent=sent, on_received=received)


async def open_session(
    ctx: NodeContext, host: str, port: int, hello: dict[str, Any], drop_after: int | None
) -> tuple[Link, dict[str, Any], int]:
    """Connect and shake hands; return (link, welcome, rtt_usec) or raise SessionFailure."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port), CONNECT_TIMEOUT
        )
    except TimeoutError as exc:
        raise SessionFailure(codes.CONNECTION_TIMEOUT) from exc
    except socket.gaierror as exc:
        raise SessionFailure(
            codes.CONNECTION_ERROR, f"{codes.describe(14)}: {codes.TARGET_ADDRESS_NOT_AVAILABLE}"
        ) from exc
    except OSError as exc:
        raise SessionFailure(codes.CONNECTION_ERROR) from exc
    link = counted_link(ctx, reader, writer, drop_after)
    started = time.monotonic()
    try:
        await link.send_json({"op": "hello", "protocol": PROTOCOL, **hello})
        reply = await link.recv_json()
    except LinkClosed as exc:
        link.abort()
        raise SessionFailure(codes.CONNECTION_LOST) from exc
    rtt_usec = int((time.monotonic() - started) * 1e6)
    if reply.get("op") == "refused":
        await link.close()
        raise SessionFailure(int(reply.get("error_code", codes.AUTH)), reply.get("error_desc"))
    if reply.get("op") != "welcome":
        link.abort()
        raise SessionFailure(codes.FASP_PROTO, "protocol error: no welcome")
    return link, reply, rtt_usec


class DataPlaneServer:
    """Accepts sessions from other nodes' clients and serves them."""

    def __init__(self, ctx: NodeContext) -> None:
        self._ctx = ctx
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self._unpaced = Pacer()  # the server side never paces, pauses nor holds: one serves all

    async def start(self, sock: socket.socket) -> None:
        """Listen on an already bound socket."""
        self._server = await asyncio.start_server(self._accept, sock=sock)

    async def stop(self) -> None:
        """Stop listening and end the sessions in progress."""
        if self._server is not None:
            self._server.close()
        for task in list(self._sessions):
            task.cancel()
        await asyncio.gather(*self._sessions, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one incoming session (tracked so stop() can end it)."""
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            self._sessions.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Shake hands, then receive or send the files."""
        drop = self._ctx.faults.take("drop_connection")
        link = counted_link(self._ctx, reader, writer, getattr(drop, "after_bytes", None))
        try:
            hello = await link.recv_json()
            try:
                grant = self._authorise(hello)
                if hello.get("direction") == "send":
                    await self._receive(link, hello, grant)
                else:
                    await self._send(link, hello, grant)
            except SessionFailure as failure:
                log.info("%s: session refused or failed: %s", self._ctx.config.name, failure)
                await link.send_json(
                    {"op": "refused", "error_code": failure.code, "error_desc": failure.desc}
                )
        except LinkClosed as exc:
            log.info("%s: session connection ended: %s", self._ctx.config.name, exc)
        except Exception:
            log.exception("%s: data plane session crashed", self._ctx.config.name)
        finally:
            await link.close()

    def _authorise(self, hello: dict[str, Any]) -> Grant:
        """Check the session's credential; raise SessionFailure(19) on any mismatch."""
        config = self._ctx.config
        token = str(hello.get("token", ""))
        user = str(hello.get("remote_user", ""))
        if self._ctx.faults.take("reject_tokens") is not None:
            raise SessionFailure(codes.AUTH)
        everything = Grant(("",), ("",))
        if sshlogin.carries_login(hello):  # SSH credentials instead of a token
            sshlogin.check_login(config, hello)
            if hello.get("direction") not in ("send", "receive") or user != config.transfer_user:
                raise SessionFailure(codes.AUTH)
            return everything  # the transfer user's docroot bounds it, as for scp
        if hello.get("direction") not in ("send", "receive") or user != config.transfer_user:
            raise SessionFailure(codes.AUTH)
        if token.startswith("Basic "):
            if check_basic(config, token[6:].strip()) is None:
                raise SessionFailure(codes.AUTH)
            return everything
        if token.startswith("Bearer "):
            access_key = hello.get("remote_access_key")
            if check_bearer(config, token[7:].strip(), access_key) is None:
                raise SessionFailure(codes.AUTH)
            return everything
        try:
            claims = self._ctx.tokens.open(token)
        except TokenError as exc:
            log.info("%s: token refused: %s", config.name, exc)
            raise SessionFailure(codes.AUTH) from exc
        if claims.user != user or claims.direction != hello.get("direction"):
            raise SessionFailure(codes.AUTH)
        return Grant(claims.destinations, claims.sources)

    async def _receive(self, link: Link, hello: dict[str, Any], grant: Grant) -> None:
        """Serve an upload: the client sends, this node writes under its docroot."""
        root = paths.normalize(str(hello.get("destination_root", "")))
        if root is None:
            raise SessionFailure(codes.BAD_PATH)
        await link.send_json(self._welcome())

        def written() -> None:
            self._ctx.counters.files_written += 1

        policy = ReceivePolicy(
            docroot=self._ctx.config.docroot,
            destination_root=root,
            allowed=grant.destinations,
            overwrite=str(hello.get("overwrite", "diff")),
            resume_policy=str(hello.get("resume_policy", "sparse_csum")),
            on_file_written=written,
        )
        try:
            await receive_items(link, policy, self._unpaced, NullProgress())
        except SessionFailure as failure:
            log.info("%s: upload session ended: %s", self._ctx.config.name, failure)

    async def _send(self, link: Link, hello: dict[str, Any], grant: Grant) -> None:
        """Serve a download: this node sends the requested sources, if the token covers them."""
        source_root = str(hello.get("source_root", ""))
        pairs = [
            PathPair(str(p.get("source", "")), p.get("destination") or None)
            for p in hello.get("paths", [])
            if isinstance(p, dict)
        ]
        for pair in pairs:
            rel = paths.join(source_root, pair.source)
            if rel is None:
                raise SessionFailure(codes.BAD_PATH)
            if not any(paths.within(rel, prefix) for prefix in grant.sources):
                raise SessionFailure(codes.AUTH)
        items = sources.plan(self._ctx.config.docroot, source_root, pairs)
        precalc = sources.precalc_of(items)
        await link.send_json(
            {
                **self._welcome(),
                "bytes_expected": precalc.bytes_expected,
                "files_expected": precalc.files_expected,
                "directories_expected": precalc.directories_expected,
            }
        )
        try:
            await send_items(link, items, self._unpaced, NullProgress())
        except SessionFailure as failure:
            log.info("%s: download session ended: %s", self._ctx.config.name, failure)

    def _welcome(self) -> dict[str, Any]:
        """Return the handshake's positive answer."""
        return {"op": "welcome", "protocol": PROTOCOL, "server_node_id": self._ctx.config.node_id}
