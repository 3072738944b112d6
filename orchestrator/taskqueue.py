"""The Celery app object, task names and queues, and enqueue(); no task bodies live here."""

from __future__ import annotations

import logging
import math
import threading
import time
from enum import StrEnum
from typing import Any

from celery import Celery
from kombu.entity import Queue

from orchestrator.broker import broker_url, transport_options
from orchestrator.settings import Settings

log = logging.getLogger(__name__)


class TaskName(StrEnum):
    """Stable task names: what Flower shows and what send_task uses."""

    CREATE_JOB = "orchestrator.create_job"  # for services that submit through the queue
    CREATE_JOBS = "orchestrator.create_jobs"  # a batch of job bodies in one message
    DISPATCH = "orchestrator.dispatch"
    SUBMIT = "orchestrator.submit"
    POLL_ALL = "orchestrator.poll_all"
    POLL_DUE = "orchestrator.poll_due"  # adaptive polling's tick
    POLL = "orchestrator.poll"
    COLLECT_FILES = "orchestrator.collect_files"  # a completed job's files and checksums
    SWEEP = "orchestrator.sweep"
    DELIVER_ALERTS = "orchestrator.deliver_alerts"
    REPLICATION_TICK = "orchestrator.replication_tick"
    PRUNE_HISTORY = "orchestrator.prune_history"
    CHECK_NODES = "orchestrator.check_nodes"
    MAINTENANCE_TICK = "orchestrator.maintenance_tick"  # pause and resume for node maintenance
    ADMISSION = "orchestrator.admission"  # other clients' work per node; links' concurrency
    # One per job that ends failed or needing attention: it fails on purpose, with the node's
    # code and text, so Flower's failed tasks are the failed jobs.
    JOB_FAILED = "orchestrator.job_failed"


QUEUE_OF: dict[TaskName, str] = {
    TaskName.CREATE_JOB: "default",
    TaskName.CREATE_JOBS: "default",
    TaskName.DISPATCH: "default",
    TaskName.SUBMIT: "submit",
    TaskName.POLL_ALL: "poll",
    TaskName.POLL_DUE: "poll",
    TaskName.POLL: "poll",
    TaskName.COLLECT_FILES: "default",
    TaskName.SWEEP: "default",
    TaskName.DELIVER_ALERTS: "default",
    TaskName.REPLICATION_TICK: "default",
    TaskName.PRUNE_HISTORY: "default",
    TaskName.CHECK_NODES: "default",
    TaskName.MAINTENANCE_TICK: "default",
    # It calls nodes, as polls do: a node that hangs delays polls, never dispatch or submit.
    TaskName.ADMISSION: "poll",
    TaskName.JOB_FAILED: "default",
}

# Keep every countdown and expiry far below the Redis visibility timeout (reliability.md F5).
VISIBILITY_TIMEOUT = 3600
PRUNE_EVERY = 3600.0  # seconds between runs of the history retention
# A periodic message (beat's, and the polls fanned out from them) that waited in its queue
# longer than its expiry is dropped unrun. Each one waits as long as the queue is behind, so an
# expiry of one interval drops them all while a busy queue stays one interval behind: polling
# and the sweeper, the safety net, stop exactly under load. Ten intervals let them run late,
# and bound how many pile up to ten.
PERIODIC_EXPIRY_INTERVALS = 10


def countdown_after(seconds: float) -> float:
    """A countdown that runs no sooner than ``seconds`` from now: hundredths, rounded up."""
    return max(0.01, math.ceil(round(seconds * 100, 6)) / 100)


def make_celery(settings: Settings) -> Celery:
    """A Celery app configured for these settings."""
    app = Celery("orchestrator", set_as_current=False)
    configure_celery(app, settings)
    return app


def configure_celery(app: Celery, settings: Settings) -> None:
    """Json only, late ack, prefetch 1, no results, time limits, events for Flower."""
    app.conf.update(
        broker_url=broker_url(settings),
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        task_soft_time_limit=120,
        task_time_limit=180,
        task_send_sent_event=False,  # beat's housekeeping would fill Flower with "sent" rows
        worker_send_task_events=True,
        task_queues=[Queue(name) for name in ("default", "submit", "poll")],  # type: ignore[no-untyped-call]
        task_default_queue="default",
        task_create_missing_queues=False,
        task_routes={name.value: {"queue": queue} for name, queue in QUEUE_OF.items()},
        broker_transport_options={
            "visibility_timeout": VISIBILITY_TIMEOUT,
            **transport_options(settings),  # a Sentinel list: the master's name, their login
        },
        broker_connection_retry_on_startup=True,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2},
        worker_hijack_root_logger=False,
        beat_schedule=beat_schedule(settings),
        # Two beats may run: the one holding the leader lock in Redis sends (workers/leader.py).
        beat_scheduler="workers.leader:LeaderScheduler",
        beat_max_loop_interval=1.0,
    )


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Beat's entries: poll fan-out each poll interval (and adaptive polling's tick), the
    sweeper, the replication tick, history retention, the nodes' health checks and the
    maintenance tick, and the admission round (other clients' work, adaptive concurrency)
    when either is on."""
    entries = {
        "poll-all-nodes": (TaskName.POLL_ALL, "poll", settings.poll_interval),
        "sweep": (TaskName.SWEEP, "default", settings.sweep_interval),
        "replication-tick": (
            TaskName.REPLICATION_TICK,
            "default",
            settings.replication_tick_seconds,
        ),
        "prune-history": (TaskName.PRUNE_HISTORY, "default", PRUNE_EVERY),
        "check-nodes": (TaskName.CHECK_NODES, "default", settings.node_check_seconds),
        # Twice per poll interval (conveyor/maintenance.py tick_seconds): a window's transfers
        # resume within one interval of its end, however late a tick runs.
        "maintenance-tick": (TaskName.MAINTENANCE_TICK, "default", settings.poll_interval / 2),
    }
    rounds = [settings.node_load_seconds] if settings.node_load_seconds > 0 else []
    if settings.adaptive_concurrency:
        rounds.append(settings.adaptive_interval_seconds)
    if rounds:
        entries["admission"] = (TaskName.ADMISSION, "poll", min(rounds))
    if settings.poll_mode == "adaptive":
        # Half the floor (domain/pacing.py): a node due now waits at most that for its poll.
        tick = max(0.1, min(settings.poll_floor_seconds, settings.poll_interval) / 2)
        entries["poll-due-nodes"] = (TaskName.POLL_DUE, "poll", tick)
    return {
        name: {
            "task": task.value,
            "schedule": every,
            "options": {
                "queue": queue,
                "expires": min(every * PERIODIC_EXPIRY_INTERVALS, VISIBILITY_TIMEOUT / 2),
            },
        }
        for name, (task, queue, every) in entries.items()
    }


# Wake-ups that carry no arguments and do the same work however many were sent: within this
# window one is published at once and one more at its end, so the last change is never left to
# the sweeper (2,992 DISPATCH messages waited in the queue at once when each job sent one).
# A delayed one (``countdown``, a poll's freed slots) stands for every delayed one asked for
# before it runs that would run no sooner: it reads the database when it runs (and the sweeper
# backs up a lost one).
COALESCE_SECONDS: dict[TaskName, float] = {TaskName.DISPATCH: 0.25}
# Wake-ups sent for jobs just created (``new_jobs=True``) coalesce on their own, over a longer
# window: a service that sends hundreds of jobs one at a time would otherwise reach dispatch
# every 0.25 s, and each run's few jobs per node go out as a submit batch of their own (5 per
# node for a first wave of 100, each with its /files/info and upload_setup). The first job of
# a quiet period is still dispatched at once; freed slots keep the short window.
NEW_JOBS_COALESCE_SECONDS = 1.0
# Delayed wake-ups that gather, and how. DISPATCH reads all it may do when it runs: one due
# sooner does a later one's work. POLL_DUE (adaptive polling's tick, also sent for the time a
# node's next poll was planned: pacing.tick_when_due) claims only the nodes due by then: one
# due at most this much later does a sooner one's work, so a process sends at most one per
# that span however many nodes it plans.
GATHER_LATE_SECONDS: dict[TaskName, float | None] = {
    TaskName.DISPATCH: None,
    TaskName.POLL_DUE: 0.05,
}


class Enqueuer:
    """Sends tasks by name after commit; a failed publish is logged, never raised.

    The database is the truth: the sweeper re-sends whatever a lost message left waiting.
    """

    def __init__(self, app: Celery) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._sent_at: dict[tuple[TaskName, bool], float] = {}  # keyed (task, new_jobs)
        self._trailing: set[tuple[TaskName, bool]] = set()
        self._due_at: dict[TaskName, list[float]] = {}  # delayed (countdown) sends still to come

    def __call__(self, task: str, *args: Any, **options: Any) -> None:
        name = TaskName(task)
        new_jobs = bool(options.pop("new_jobs", False))
        if not args:
            window = COALESCE_SECONDS.get(name)
            if window is not None and new_jobs:
                window = NEW_JOBS_COALESCE_SECONDS
            if window is not None and not options and self._coalesced((name, new_jobs), window):
                return
            delayed = name in GATHER_LATE_SECONDS and options.keys() == {"countdown"}
            if delayed and self._gathered(name, options["countdown"]):
                return
        self._send(task, *args, **options)

    def _gathered(self, name: TaskName, countdown: float) -> bool:
        """True when a delayed send of ``name`` from this process is still due and will do
        this one's work too (GATHER_LATE_SECONDS: sooner, or at most that much later)."""
        late = GATHER_LATE_SECONDS[name]
        with self._lock:
            now = time.monotonic()
            wanted = now + countdown
            due = [at for at in self._due_at.get(name, []) if at > now]
            if late is None:
                covered = any(at <= wanted for at in due)
            else:
                covered = any(wanted <= at <= wanted + late for at in due)
            if covered:
                self._due_at[name] = due
                return True
            self._due_at[name] = [*due, wanted]
            return False

    def _coalesced(self, key: tuple[TaskName, bool], window: float) -> bool:
        """True when a send of the same kind went out within the window: a trailing one is
        due when the window ends (one window after that send, not after this call: a
        wake-up for freed slots waits no longer than it must)."""
        with self._lock:
            now = time.monotonic()
            since = now - self._sent_at.get(key, -window)
            if since >= window:
                self._sent_at[key] = now
                return False
            if key not in self._trailing:
                self._trailing.add(key)
                timer = threading.Timer(window - since, self._trail, args=(key,))
                timer.daemon = True
                timer.start()
            return True

    def _trail(self, key: tuple[TaskName, bool]) -> None:
        with self._lock:
            self._trailing.discard(key)
            self._sent_at[key] = time.monotonic()
        self._send(key[0].value)

    def _send(self, task: str, *args: Any, **options: Any) -> None:
        queue = QUEUE_OF.get(TaskName(task), "default")
        try:
            self._app.send_task(task, args=list(args), queue=queue, **options)
        except Exception as exc:  # broker down: the sweeper will send it again
            log.warning("could not publish %s%r: %s", task, args, type(exc).__name__)
