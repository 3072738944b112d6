"""Session slots: the cap on sessions a node runs at once (transfer_manager_max_concurrent)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable


class SessionSlots:
    """At most limit() sessions at once; waiters are served first come, first served."""

    def __init__(self, limit: Callable[[], int]) -> None:
        self._limit = limit
        self._running = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        """Wait for a free slot and take it."""
        if self._running < self._limit() and not self._waiters:
            self._running += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        """Give a slot back, handing it to the longest waiter."""
        self._running -= 1
        while self._waiters and self._running < self._limit():
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._running += 1
                waiter.set_result(None)
