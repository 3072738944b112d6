"""Node API requests, errors and latency: counted per process, added to one Redis hash.

Workers on many hosts make the node calls and the API serves /metrics, so counts meet in
Redis (the broker every worker reaches already). Each process buffers its counts and adds
them with one MULTI/EXEC of HINCRBY / HINCRBYFLOAT every few seconds. Each hash field is a
JSON array: a kind, then its labels (node, method, endpoint, then a code, an error kind or a
bucket bound). Recording never fails the call that is being recorded.
"""

from __future__ import annotations

import bisect
import functools
import json
import logging
import os
import threading
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from orchestrator.broker import connect
from orchestrator.nodeapi.observe import NodeCall
from orchestrator.settings import Settings

log = logging.getLogger(__name__)

HASH_KEY = "hsts-orchestrator:metrics:node-api"
# Upper bounds in seconds; a call slower than the last one counts in "+Inf" only.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BOUNDS = (*(repr(b) for b in LATENCY_BUCKETS), "+Inf")

REQUESTS, ERRORS, SECONDS, BUCKET = "requests", "errors", "seconds", "bucket"
NO_ANSWER = "none"  # the code label of a request that got no HTTP answer


def field_name(kind: str, *labels: str) -> str:
    """A hash field: the kind and its label values as a compact JSON array."""
    return json.dumps([kind, *labels], separators=(",", ":"))


Where = tuple[str, str, str]  # node, method, route
# One call's outcome: where, status (None: no answer), latency bucket index, error kind.
Outcome = tuple[Where, int | None, int, str | None]


def hash_fields(outcome: Outcome) -> list[str]:
    """The integer fields a call with this outcome adds 1 to."""
    where, status, bucket, error = outcome
    code = NO_ANSWER if status is None else str(status)
    names = [field_name(REQUESTS, *where, code), field_name(BUCKET, *where, _BOUNDS[bucket])]
    if error is not None:
        names.append(field_name(ERRORS, *where, error))
    return names


class NodeCallRecorder:
    """A CallObserver for NodeClient: counts in memory, a daemon thread flushes to Redis.

    Safe across fork (a Celery prefork child starts with empty counts and its own thread).
    """

    def __init__(self, connect: Callable[[], redis.Redis], *, flush_seconds: float) -> None:
        self._connect = connect
        self._every = flush_seconds
        self._fresh_process()

    def _fresh_process(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._counts: Counter[Outcome] = Counter()
        self._seconds: dict[Where, float] = defaultdict(float)
        self._client: redis.Redis | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self, call: NodeCall) -> None:
        """Count one node call (cheap: the hash fields are named at flush time)."""
        if self._pid != os.getpid():
            self._fresh_process()
        where = (call.node, call.method, call.route)
        bucket = bisect.bisect_left(LATENCY_BUCKETS, call.seconds)
        with self._lock:
            self._counts[(where, call.status, bucket, call.error)] += 1
            self._seconds[where] += call.seconds
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="node-metrics-flush", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self.flush()

    def flush(self) -> bool:
        """Add what was counted since the last flush to Redis; False if it had to be dropped."""
        if self._pid != os.getpid():
            self._fresh_process()  # never take a lock another process's thread may hold
        with self._lock:
            counts, self._counts = self._counts, Counter()
            seconds, self._seconds = self._seconds, defaultdict(float)
        if not counts:
            return True
        try:
            if self._client is None:
                self._client = self._connect()
            totals: Counter[str] = Counter()
            for outcome, n in counts.items():
                for name in hash_fields(outcome):
                    totals[name] += n
            pipe = self._client.pipeline(transaction=True)
            for name, n in totals.items():
                pipe.hincrby(HASH_KEY, name, n)
            for where, total in seconds.items():
                pipe.hincrbyfloat(HASH_KEY, field_name(SECONDS, *where), total)
            pipe.execute()
        except redis.RedisError as exc:
            log.debug("node API metrics dropped (%d fields): %s", len(counts), exc)
            return False
        return True

    def close(self) -> None:
        """Stop the flush thread and flush once more."""
        self._stop.set()
        if self._thread is not None and self._pid == os.getpid():
            self._thread.join(timeout=self._every + 1)
        self.flush()
        if self._client is not None:
            self._client.close()
            self._client = None


def redis_connector(settings: Settings) -> Callable[[], redis.Redis]:
    """Opens a client on the broker's Redis (its master, with Sentinel) with short timeouts
    (metrics must never hang)."""
    return functools.partial(connect, settings)


def node_call_recorder(settings: Settings) -> NodeCallRecorder | None:
    """The recorder a worker process passes to NodeClients; None when metrics are off."""
    if not settings.node_api_metrics:
        return None
    return NodeCallRecorder(redis_connector(settings), flush_seconds=settings.metrics_flush_seconds)


@dataclass
class NodeCallTotals:
    """What every process has flushed so far, by label values."""

    requests: dict[tuple[str, str, str, str], int] = field(default_factory=dict)
    errors: dict[tuple[str, str, str, str], int] = field(default_factory=dict)
    seconds: dict[tuple[str, str, str], float] = field(default_factory=dict)
    buckets: dict[tuple[str, str, str], dict[str, int]] = field(default_factory=dict)

    def cumulative(self, where: tuple[str, str, str]) -> list[tuple[str, float]]:
        """Prometheus buckets (count at or below each bound, "+Inf" last) of one endpoint."""
        counts = self.buckets.get(where, {})
        running, result = 0, []
        for bound in _BOUNDS:
            running += counts.get(bound, 0)
            result.append((bound, float(running)))
        return result


def read_totals(client: redis.Redis) -> NodeCallTotals:
    """The hash as totals; fields it cannot read (another version's) are skipped."""
    totals = NodeCallTotals()
    raw: dict[bytes, bytes] = client.hgetall(HASH_KEY)  # type: ignore[assignment]
    for name, value in raw.items():
        try:
            kind, *labels = json.loads(name)
            node, method, route, *rest = (str(label) for label in labels)
            if kind == REQUESTS:
                totals.requests[(node, method, route, rest[0])] = int(value)
            elif kind == ERRORS:
                totals.errors[(node, method, route, rest[0])] = int(value)
            elif kind == SECONDS:
                totals.seconds[(node, method, route)] = float(value)
            elif kind == BUCKET:
                totals.buckets.setdefault((node, method, route), {})[rest[0]] = int(value)
        except (ValueError, TypeError, IndexError):
            log.debug("skipping node API metrics field %r", name)
    return totals
