"""Beat that can run twice: only the holder of a leader lock in Redis sends the schedule.

Each beat tries to take (or keep) the lock before every tick: a key with a short expiry, set
only if absent and renewed only by its holder. A standby beat ticks without sending; when the
leader dies (even kill -9) the key expires and the standby sends from its next tick on. Every
scheduled task is idempotent (they read the database), so the moment of overlap costs at
most one extra wake-up, never a duplicate effect.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from typing import Any

import redis
from celery.beat import PersistentScheduler

from orchestrator.broker import connect
from orchestrator.settings import load_settings

log = logging.getLogger(__name__)

LEADER_KEY = "hsts-orchestrator:beat-leader"
# Renew the key only if it still holds our value: a leader that stalled past the expiry must
# not take the lock back from the beat that took over.
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""


class LeaderLock:
    """A Redis key that one process at a time holds, with an expiry it renews."""

    def __init__(self, client: redis.Redis, ttl_seconds: float) -> None:
        self._client = client
        self._ttl_ms = int(ttl_seconds * 1000)
        self.identity = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._renew = client.register_script(_RENEW)
        self.held = False

    def hold(self) -> bool:
        """Take the lock if it is free, renew it if it is ours; whether we hold it now."""
        try:
            # Renewed even when we thought it lost: after a broker outage or a Sentinel failover
            # the key may still be ours (replicated), and only its holder can renew it.
            if self._renew(keys=[LEADER_KEY], args=[self.identity, self._ttl_ms]):
                if not self.held:
                    log.warning("beat %s holds the lead again", self.identity)
                self.held = True
                return True
            taken = bool(self._client.set(LEADER_KEY, self.identity, nx=True, px=self._ttl_ms))
        except redis.RedisError as exc:
            if self.held:
                log.warning("beat: cannot reach Redis to keep the leader lock (%s)", exc)
            self.held = False
            return False
        if taken != self.held:
            log.warning("beat %s %s the lead", self.identity, "takes" if taken else "lost")
        self.held = taken
        return taken


class LeaderScheduler(PersistentScheduler):
    """Celery's persistent scheduler, sending only while this beat holds the leader lock."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        settings = load_settings()
        # With Sentinel the client follows the master: after a failover the lock is taken
        # again on the new one (the key may not have reached it), from the next check on.
        self._lock = LeaderLock(connect(settings), settings.beat_leader_seconds)
        self._check_every = settings.beat_leader_seconds / 3
        self._next_check = 0.0
        super().__init__(*args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """One tick: the scheduler's own when we lead, else wait and try for the lock again."""
        now = time.monotonic()
        if now >= self._next_check:
            self._lock.hold()
            self._next_check = now + self._check_every
        if not self._lock.held:
            return self._check_every
        delay: float = super().tick(*args, **kwargs)
        return min(delay, max(0.0, self._next_check - time.monotonic()))
