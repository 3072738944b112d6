"""The figures of /metrics that are sums over every ended job and transfer, read at a bounded
cost: while one read is cheap, each scrape reads them again; once it is not (a long history),
a scrape serves the last reading and a background thread takes a new one when it is older
than a multiple of what it cost, so history never takes more than a few percent of the
database's time nor a scrape longer than Prometheus waits."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from weakref import WeakKeyDictionary

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.services.views.metrics import queries
from orchestrator.services.views.metrics.queries import Histogram

log = logging.getLogger(__name__)

CHEAP_SECONDS = 0.25  # a reading this quick is taken at every scrape
AGE_PER_COST = 20.0  # else it is kept for 20 times what it cost (about 5 % of the time)...
MAX_AGE_SECONDS = 600.0  # ...and never longer than this


@dataclass(frozen=True)
class HistorySums:
    """Sums over every ended job and transfer."""

    ended_jobs: dict[str, int]
    job_durations: dict[str, Histogram]
    transfer_durations: dict[tuple[int, int, str], Histogram]
    retries: dict[str, int]


def read_history(session: Session) -> HistorySums:
    """The four sums, as one reading."""
    return HistorySums(
        ended_jobs=queries.ended_jobs_by_state(session),
        job_durations=queries.job_durations(session),
        transfer_durations=queries.transfer_durations(session),
        retries=queries.retries_by_class(session),
    )


@dataclass(frozen=True)
class _Reading:
    sums: HistorySums
    read_at: float  # on the cache's timer
    cost_seconds: float


class HistoryCache:
    """The last reading of one database's history sums, and when to take the next."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        read: Callable[[Session], HistorySums] = read_history,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._read = read
        self._timer = timer
        self._last: _Reading | None = None
        self._reading = threading.Lock()  # one reading at a time

    def sums(self) -> HistorySums:
        """The sums to publish now: read again while that is cheap, else the last reading."""
        last = self._last
        if last is None or last.cost_seconds < CHEAP_SECONDS:
            with self._reading:
                return self._take().sums
        age = min(MAX_AGE_SECONDS, AGE_PER_COST * last.cost_seconds)
        if self._timer() - last.read_at > age and self._reading.acquire(blocking=False):
            threading.Thread(target=self._refresh, name="metrics-history", daemon=True).start()
        return last.sums

    def _refresh(self) -> None:
        try:
            self._take()
        except SQLAlchemyError as exc:  # the next stale scrape tries again
            log.warning("metrics: history sums could not be read: %s", type(exc).__name__)
        finally:
            self._reading.release()

    def _take(self) -> _Reading:
        started = self._timer()
        with self._sessions() as session:
            sums = self._read(session)
        ended = self._timer()
        self._last = _Reading(sums, read_at=ended, cost_seconds=ended - started)
        return self._last


_caches: WeakKeyDictionary[sessionmaker[Session], HistoryCache] = WeakKeyDictionary()
_caches_lock = threading.Lock()


def history_of(sessions: sessionmaker[Session]) -> HistoryCache:
    """The process's cache for this session factory (one per database)."""
    with _caches_lock:
        cache = _caches.get(sessions)
        if cache is None:
            cache = _caches[sessions] = HistoryCache(sessions)
        return cache
