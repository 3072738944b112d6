"""Rate limiting and pausing of a running session's byte stream."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time

MAX_CHUNK = 256 * 1024
MIN_CHUNK = 1024


class Pacer:
    """Paces a byte stream to a rate in kbps and holds it while paused (or given no share)."""

    def __init__(self, target_rate_kbps: int = 0) -> None:
        self._running = asyncio.Event()
        self._running.set()
        self._changed = asyncio.Event()
        self._bytes_per_second = math.inf
        self._t0 = time.monotonic()
        self._sent = 0
        self.set_rate(target_rate_kbps)

    @property
    def paused(self) -> bool:
        """Tell whether the stream is held."""
        return not self._running.is_set()

    @property
    def chunk_size(self) -> int:
        """Return a chunk size that keeps a throttled stream smooth (about 20 chunks/s)."""
        if self._bytes_per_second == math.inf or self._bytes_per_second <= 0:
            return MAX_CHUNK
        return max(MIN_CHUNK, min(MAX_CHUNK, int(self._bytes_per_second / 20)))

    def set_rate(self, target_rate_kbps: int) -> None:
        """Change the target rate from now on (0: unlimited)."""
        self.set_share(target_rate_kbps if target_rate_kbps > 0 else None)

    def set_share(self, kbps: float | None) -> None:
        """Pace at the share a link gives (None: unlimited, 0: hold until a share comes)."""
        self._bytes_per_second = math.inf if kbps is None else max(0.0, kbps) * 1000 / 8
        self._restart_clock()
        self._changed.set()

    def pause(self) -> None:
        """Hold the stream before its next chunk."""
        self._running.clear()

    def resume(self) -> None:
        """Let the stream go on, without a burst to catch up the paused time."""
        self._restart_clock()
        self._running.set()

    async def until_running(self) -> None:
        """Wait while paused."""
        await self._running.wait()

    async def wait(self, nbytes: int) -> None:
        """Wait until nbytes more may go: while paused, and as long as the rate requires."""
        if not self._running.is_set():
            await self._running.wait()
        while self._bytes_per_second != math.inf:
            self._changed.clear()
            delay = math.inf
            if self._bytes_per_second > 0:
                delay = self._t0 + (self._sent + nbytes) / self._bytes_per_second
                delay -= time.monotonic()
                if delay <= 0:
                    break
            with contextlib.suppress(TimeoutError):
                # A new rate wakes the wait early: the chunk then goes at the new pace.
                await asyncio.wait_for(self._changed.wait(), None if delay == math.inf else delay)
        self._sent += nbytes

    def _restart_clock(self) -> None:
        """Measure the rate from now on."""
        self._t0 = time.monotonic()
        self._sent = 0
