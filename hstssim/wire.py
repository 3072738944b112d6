"""Data-plane framing over TCP: a 1-byte kind, a 4-byte big-endian length, the payload."""

# Kind b"J" carries one JSON control message (an object with an "op" member); kind b"D"
# carries raw file bytes. A Link told to drop after N data bytes (the drop_connection fault)
# aborts the TCP connection mid-stream.

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Callable
from typing import Any

JSON = b"J"
DATA = b"D"
_HEADER = struct.Struct("!cI")
MAX_FRAME = 8 * 1024 * 1024


class LinkClosed(Exception):
    """The connection ended early; delivered = data bytes of a cut-short frame that went out."""

    def __init__(self, message: str, delivered: int = 0) -> None:
        super().__init__(message)
        self.delivered = delivered


def _no_count(_: int) -> None:
    """Ignore a byte count."""


class Link:
    """A framed, optionally fault-injected connection between two data planes."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        drop_after: int | None = None,
        on_sent: Callable[[int], None] = _no_count,
        on_received: Callable[[int], None] = _no_count,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._drop_after = drop_after
        self._drop_pending = False
        self._on_sent = on_sent
        self._on_received = on_received
        self.data_bytes = 0

    @property
    def local_address(self) -> str:
        """Return this end's IP address."""
        info = self._writer.get_extra_info("sockname")
        return str(info[0]) if info else ""

    @property
    def peer_address(self) -> str:
        """Return the other end's IP address."""
        info = self._writer.get_extra_info("peername")
        return str(info[0]) if info else ""

    async def _write(self, kind: bytes, payload: bytes, after: bytes = b"") -> None:
        """Write one frame (and after it, the framed bytes after) and wait for the buffer to
        drain."""
        try:
            self._writer.write(_HEADER.pack(kind, len(payload)) + payload + after)
            await self._writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise LinkClosed(str(exc)) from exc

    async def send_json(self, message: dict[str, Any]) -> None:
        """Send one control message."""
        await self._write(JSON, json.dumps(message, separators=(",", ":")).encode())

    async def send_data(self, chunk: bytes, then: dict[str, Any] | None = None) -> None:
        """Send file bytes (and the control message ``then`` in the same write, which saves a
        system call on each side), dropping the connection where the fault says."""
        if then is not None and self._drop_after is None:
            message = json.dumps(then, separators=(",", ":")).encode()
            await self._write(DATA, chunk, _HEADER.pack(JSON, len(message)) + message)
            self.data_bytes += len(chunk)
            self._on_sent(len(chunk))
            return
        if self._drop_after is not None and self.data_bytes + len(chunk) >= self._drop_after:
            chunk = chunk[: max(0, self._drop_after - self.data_bytes)]
            if chunk:
                await self._write(DATA, chunk)
                self.data_bytes += len(chunk)
                self._on_sent(len(chunk))
            self.abort()
            raise LinkClosed("connection dropped by fault", delivered=len(chunk))
        await self._write(DATA, chunk)
        self.data_bytes += len(chunk)
        self._on_sent(len(chunk))
        if then is not None:
            await self.send_json(then)

    async def recv(self) -> tuple[bytes, bytes]:
        """Return the next frame as (kind, payload)."""
        if self._drop_pending:
            self.abort()
            raise LinkClosed("connection dropped by fault")
        try:
            kind, length = _HEADER.unpack(await self._reader.readexactly(_HEADER.size))
            if length > MAX_FRAME or kind not in (JSON, DATA):
                raise LinkClosed("malformed frame")
            payload = await self._reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise LinkClosed(str(exc)) from exc
        if kind == DATA:
            if self._drop_after is not None and self.data_bytes + length >= self._drop_after:
                payload = payload[: max(0, self._drop_after - self.data_bytes)]
                self._drop_pending = True
            self.data_bytes += len(payload)
            self._on_received(len(payload))
        return kind, payload

    async def recv_json(self) -> dict[str, Any]:
        """Return the next frame, which must be a control message."""
        kind, payload = await self.recv()
        if kind != JSON:
            raise LinkClosed("expected a control message, got data")
        return decode(payload)

    def abort(self) -> None:
        """Drop the connection at once (no FIN handshake)."""
        self._writer.transport.abort()

    async def close(self) -> None:
        """Close the connection politely."""
        try:
            self._writer.close()
            await self._writer.wait_closed()
        except (ConnectionError, OSError):
            pass


def decode(payload: bytes) -> dict[str, Any]:
    """Decode a control message payload."""
    try:
        message = json.loads(payload)
    except ValueError as exc:
        raise LinkClosed("malformed control message") from exc
    if not isinstance(message, dict):
        raise LinkClosed("malformed control message")
    return message
