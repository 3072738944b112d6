"""Rate limiting and pausing of a running session's byte stream."""

from __future__ import annotations

import asyncio
import time

MAX_CHUNK = 256 * 1024
MIN_CHUNK = 1024


class Pacer:
    """Paces a byte stream to a target rate in kbps (0: unlimited) and holds it while paused."""

    def __init__(self, target_rate_kbps: int = 0) -> None:
        self._running = asyncio.Event()
        self._running.set()
        self._bytes_per_second = 0.0
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
        if self._bytes_per_second <= 0:
            return MAX_CHUNK
        return max(MIN_CHUNK, min(MAX_CHUNK, int(self._bytes_per_second / 20)))

    def set_rate(self, target_rate_kbps: int) -> None:
        """Change the target rate from now on."""
        self._bytes_per_second = max(0, target_rate_kbps) * 1000 / 8
        self._restart_clock()

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
        if self._bytes_per_second <= 0:
            return
        self._sent += nbytes
        delay = self._t0 + self._sent / self._bytes_per_second - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def _restart_clock(self) -> None:
        """Measure the rate from now on."""
        self._t0 = time.monotonic()
        self._sent = 0
