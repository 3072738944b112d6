"""The /metrics collector: every family is read when Prometheus scrapes; only the sums over a
long history are kept between scrapes (metrics/history.py says when).

Work happens in worker processes on many hosts, so counters in the API process would be
wrong: job, transfer and poll figures come from the database, queue depth and node API
request figures from Redis. A source that cannot be read is left out of that scrape and
``hsts_orchestrator_metrics_source_up`` says which.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import TypeVar

import redis
from prometheus_client import generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.db.tables import LinkConcurrencyRow, NodeLoadRow
from orchestrator.domain.ascp import ErrorClass
from orchestrator.services.context import ServiceContext
from orchestrator.services.conveyor.breakers import open_breakers
from orchestrator.services.conveyor.linkbudgets import budget_figures
from orchestrator.services.nodes.calls import read_totals, redis_connector
from orchestrator.services.nodes.freshness import poll_status
from orchestrator.services.views import throughput
from orchestrator.services.views.metrics import broker, queries
from orchestrator.services.views.metrics.history import HistorySums, history_of

log = logging.getLogger(__name__)

P = "hsts_orchestrator"
# Retry classes listed even at zero, so rate() and alerts work from the first scrape.
RETRY_CLASSES = (*(c.value for c in ErrorClass), "submission", "lost")


class OrchestratorCollector(Collector):
    """Reads the database and Redis at each collect()."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        connect_redis: Callable[[], redis.Redis],
        clock: Callable[[], datetime],
    ) -> None:
        self._sessions = sessions
        self._connect_redis = connect_redis
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        """Every family; a source that fails is skipped and reported as down."""
        started = time.perf_counter()
        up = GaugeMetricFamily(
            f"{P}_metrics_source_up",
            "1 when this scrape could read the source (database, redis), else 0.",
            labels=["source"],
        )
        try:
            history = history_of(self._sessions).sums()
            with self._sessions() as session:
                families = database_families(session, self._clock(), history)
            up.add_metric(["database"], 1)
            yield from families
        except SQLAlchemyError as exc:
            log.warning("metrics: the database could not be read: %s", type(exc).__name__)
            up.add_metric(["database"], 0)
        client = self._connect_redis()
        try:
            families = redis_families(client)
            up.add_metric(["redis"], 1)
            yield from families
        except redis.RedisError as exc:
            log.warning("metrics: redis could not be read: %s", type(exc).__name__)
            up.add_metric(["redis"], 0)
        finally:
            client.close()
        yield up
        yield GaugeMetricFamily(
            f"{P}_metrics_scrape_seconds",
            "How long this scrape took to read its sources.",
            value=time.perf_counter() - started,
        )


def database_families(session: Session, now: datetime, history: HistorySums) -> list[Metric]:
    """Jobs, bytes and files per node pair, durations, poll freshness and retries; the sums
    over ended jobs and transfers come from ``history``."""
    names = queries.node_names(session)

    def name(node_id: int) -> str:
        return names.get(node_id, str(node_id))

    jobs = _filled(
        GaugeMetricFamily(f"{P}_jobs", "Jobs in each state now.", labels=["state"]),
        (
            ((state,), n)
            for state, n in (queries.live_jobs_by_state(session) | history.ended_jobs).items()
        ),
    )

    pair = ["source", "destination"]
    moved_bytes = CounterMetricFamily(
        f"{P}_transferred_bytes", "Bytes moved from one node to another.", labels=pair
    )
    moved_files = CounterMetricFamily(
        f"{P}_transferred_files", "Files completed from one node to another.", labels=pair
    )
    for (source, destination), (nbytes, files) in throughput.totals_by_pair(session).items():
        moved_bytes.add_metric([name(source), name(destination)], nbytes)
        moved_files.add_metric([name(source), name(destination)], files)

    job_seconds = HistogramMetricFamily(
        f"{P}_job_duration_seconds",
        "Ended jobs, from creation to their final state, by that state.",
        labels=["state"],
    )
    for state, h in history.job_durations.items():
        job_seconds.add_metric([state], h.buckets(), h.total)
    transfer_seconds = HistogramMetricFamily(
        f"{P}_transfer_duration_seconds",
        "Ended node transfers (attempts), from their start on the node to their end.",
        labels=[*pair, "status"],
    )
    for (source, destination, status), h in history.transfer_durations.items():
        transfer_seconds.add_metric([name(source), name(destination), status], h.buckets(), h.total)

    return [
        jobs,
        moved_bytes,
        moved_files,
        job_seconds,
        transfer_seconds,
        *_poll_families(session, now, name),
        _retries(history.retries),
        *_breaker_families(session, name),
        *_budget_families(session, name),
        *_admission_families(session, name),
    ]


def _budget_families(session: Session, name: Callable[[int], str]) -> list[GaugeMetricFamily]:
    """Each link's budget, the rate shared out among its transfers, and those paused for it."""
    pair = ["source", "destination"]
    budget = GaugeMetricFamily(
        f"{P}_link_budget_kbps", "The operator's rate budget for the link (kbps).", labels=pair
    )
    allocated = GaugeMetricFamily(
        f"{P}_link_allocated_kbps",
        "The sum of the target rates last sent to the link's running transfers (kbps).",
        labels=pair,
    )
    paused = GaugeMetricFamily(
        f"{P}_link_paused_transfers",
        "The link's transfers paused by the allocator for higher-priority deadlines.",
        labels=pair,
    )
    for figure in budget_figures(session):
        labels = [name(figure.source_node_id), name(figure.destination_node_id)]
        budget.add_metric(labels, figure.kbps)
        allocated.add_metric(labels, figure.allocated_kbps)
        paused.add_metric(labels, figure.paused)
    return [budget, allocated, paused]


def _admission_families(session: Session, name: Callable[[int], str]) -> list[GaugeMetricFamily]:
    """Each link's adaptive limit on active jobs and each node's transfers for other clients."""
    limits = GaugeMetricFamily(
        f"{P}_link_concurrency_limit",
        "Active jobs the link allows now, as adaptive concurrency last set it.",
        labels=["source", "destination"],
    )
    for row in session.scalars(select(LinkConcurrencyRow)):
        limits.add_metric(
            [name(row.source_node_id), name(row.destination_node_id)], row.active_limit
        )
    others = GaugeMetricFamily(
        f"{P}_node_other_clients_transfers",
        "Transfers the node ran for other clients (waiting or running) when last counted.",
        labels=["node"],
    )
    for load in session.scalars(select(NodeLoadRow).where(NodeLoadRow.others.is_not(None))):
        others.add_metric([name(load.node_id)], load.others or 0)
    return [limits, others]


def _breaker_families(session: Session, name: Callable[[int], str]) -> list[GaugeMetricFamily]:
    """Links whose circuit breaker is open (or probing), and destinations held."""
    links = GaugeMetricFamily(
        f"{P}_link_breaker_open",
        "1 while the link's circuit breaker stops new submissions (open or probing).",
        labels=["source", "destination"],
    )
    held = GaugeMetricFamily(
        f"{P}_destination_held",
        "1 while jobs to the node are held (a full disk), until a probe succeeds.",
        labels=["node"],
    )
    for scope, source, destination in open_breakers(session):
        if scope == "link" and source is not None:
            links.add_metric([name(source), name(destination)], 1)
        elif scope == "destination":
            held.add_metric([name(destination)], 1)
    return [links, held]


def _poll_families(
    session: Session, now: datetime, name: Callable[[int], str]
) -> list[GaugeMetricFamily]:
    node = ["node"]
    lag = GaugeMetricFamily(
        f"{P}_node_poll_lag_seconds",
        "Seconds since the node's change feed was last read while it had transfers to follow "
        "(0 when it has none).",
        labels=node,
    )
    open_transfers = GaugeMetricFamily(
        f"{P}_node_open_transfers",
        "Our transfers the node runs (as source, or as destination of a pull) that have not ended.",
        labels=node,
    )
    last_ok = GaugeMetricFamily(
        f"{P}_node_last_poll_success_timestamp_seconds",
        "Unix time of the node's last successful poll.",
        labels=node,
    )
    failing = GaugeMetricFamily(
        f"{P}_node_poll_failing", "1 when the node's last poll ended in an error.", labels=node
    )
    retention = GaugeMetricFamily(
        f"{P}_node_activity_retention_seconds",
        "How long the node keeps transfer records (its activity_retention, as registered): a "
        "poll lag nearing it means end states may expire unread.",
        labels=node,
    )
    for poll in poll_status(session, now):
        label = [name(poll.node_id)]
        lag.add_metric(label, poll.lag_seconds)
        open_transfers.add_metric(label, poll.open_transfers)
        failing.add_metric(label, int(poll.failing))
        retention.add_metric(label, poll.activity_retention_seconds)
        if poll.last_success_at is not None:
            last_ok.add_metric(label, poll.last_success_at.timestamp())
    return [lag, open_transfers, last_ok, failing, retention]


def _retries(by_class: dict[str, int]) -> CounterMetricFamily:
    retries = CounterMetricFamily(
        f"{P}_retries",
        "New attempts of a job, by why the attempt before ended (ascp error class, "
        "submission, lost, or the node status).",
        labels=["error_class"],
    )
    counts = dict.fromkeys(RETRY_CLASSES, 0) | by_class
    return _filled(retries, (((name,), n) for name, n in counts.items()))


def redis_families(client: redis.Redis) -> list[Metric]:
    """Queue depth, and node API requests, errors and latency as the workers flushed them."""
    depth = _filled(
        GaugeMetricFamily(
            f"{P}_queue_messages", "Messages waiting in a Celery queue.", labels=["queue"]
        ),
        (((queue,), n) for queue, n in broker.queue_depths(client).items()),
    )
    unacked = GaugeMetricFamily(
        f"{P}_queue_unacked_messages",
        "Messages workers have taken and not yet acknowledged (all queues).",
        value=broker.unacked_messages(client),
    )
    where = ["node", "method", "endpoint"]
    totals = read_totals(client)
    requests = _filled(
        CounterMetricFamily(
            f"{P}_node_api_requests",
            "Node API requests by node, endpoint (route template) and HTTP status "
            '(code="none": no answer).',
            labels=[*where, "code"],
        ),
        totals.requests.items(),
    )
    errors = _filled(
        CounterMetricFamily(
            f"{P}_node_api_errors",
            "Node API requests that failed, by the kind of error (server_error, unreachable, ...).",
            labels=[*where, "kind"],
        ),
        totals.errors.items(),
    )
    latency = HistogramMetricFamily(
        f"{P}_node_api_request_duration_seconds",
        "Node API request time, from sending to the whole answer read.",
        labels=where,
    )
    for key, total in sorted(totals.seconds.items()):
        latency.add_metric(list(key), totals.cumulative(key), total)
    return [depth, unacked, requests, errors, latency]


F = TypeVar("F", CounterMetricFamily, GaugeMetricFamily)


def _filled(family: F, samples: Iterable[tuple[tuple[str, ...], float]]) -> F:
    """The family with one sample per label tuple, in label order."""
    for labels, value in sorted(samples):
        family.add_metric(list(labels), value)
    return family


def render(
    sessions: sessionmaker[Session],
    connect_redis: Callable[[], redis.Redis],
    clock: Callable[[], datetime],
) -> bytes:
    """One scrape in the Prometheus text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(OrchestratorCollector(sessions, connect_redis, clock))
    return generate_latest(registry)


def scrape(ctx: ServiceContext) -> bytes:
    """One scrape of this context's database and broker."""
    return render(ctx.sessions, redis_connector(ctx.settings), ctx.now)
