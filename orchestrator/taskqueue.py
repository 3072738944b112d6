"""The Celery app object, task names and queues, and enqueue(); no task bodies live here."""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any

from celery import Celery
from kombu.entity import Queue

from orchestrator.settings import Settings

log = logging.getLogger(__name__)


class TaskName(StrEnum):
    """Stable task names: what Flower shows and what send_task uses."""

    CREATE_JOB = "orchestrator.create_job"  # for services that submit through the queue
    DISPATCH = "orchestrator.dispatch"
    SUBMIT = "orchestrator.submit"
    POLL_ALL = "orchestrator.poll_all"
    POLL = "orchestrator.poll"
    SWEEP = "orchestrator.sweep"
    DELIVER_ALERTS = "orchestrator.deliver_alerts"
    REPLICATION_TICK = "orchestrator.replication_tick"


QUEUE_OF: dict[TaskName, str] = {
    TaskName.CREATE_JOB: "default",
    TaskName.DISPATCH: "default",
    TaskName.SUBMIT: "submit",
    TaskName.POLL_ALL: "poll",
    TaskName.POLL: "poll",
    TaskName.SWEEP: "default",
    TaskName.DELIVER_ALERTS: "default",
    TaskName.REPLICATION_TICK: "default",
}

# Keep every countdown and expiry far below the Redis visibility timeout (reliability.md F5).
VISIBILITY_TIMEOUT = 3600
# A periodic message (beat's, and the polls fanned out from them) that waited in its queue
# longer than its expiry is dropped unrun. Each one waits as long as the queue is behind, so an
# expiry of one interval drops them all while a busy queue stays one interval behind: polling
# and the sweeper, the safety net, stop exactly under load. Ten intervals let them run late,
# and bound how many pile up to ten.
PERIODIC_EXPIRY_INTERVALS = 10


def broker_url(settings: Settings) -> str:
    """The Redis URL the workers use."""
    return settings.redis_url or "redis://127.0.0.1:6379/0"


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
        task_send_sent_event=True,
        worker_send_task_events=True,
        task_queues=[Queue(name) for name in ("default", "submit", "poll")],  # type: ignore[no-untyped-call]
        task_default_queue="default",
        task_create_missing_queues=False,
        task_routes={name.value: {"queue": queue} for name, queue in QUEUE_OF.items()},
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT},
        broker_connection_retry_on_startup=True,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2},
        worker_hijack_root_logger=False,
        beat_schedule=beat_schedule(settings),
    )


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Beat's entries: poll fan-out each poll interval, the sweeper, the replication tick."""
    entries = {
        "poll-all-nodes": (TaskName.POLL_ALL, "poll", settings.poll_interval),
        "sweep": (TaskName.SWEEP, "default", settings.sweep_interval),
        "replication-tick": (
            TaskName.REPLICATION_TICK,
            "default",
            settings.replication_tick_seconds,
        ),
    }
    return {
        name: {
            "task": task.value,
            "schedule": every,
            "options": {"queue": queue, "expires": every * PERIODIC_EXPIRY_INTERVALS},
        }
        for name, (task, queue, every) in entries.items()
    }


class Enqueuer:
    """Sends tasks by name after commit; a failed publish is logged, never raised.

    The database is the truth: the sweeper re-sends whatever a lost message left waiting.
    """

    def __init__(self, app: Celery) -> None:
        self._app = app

    def __call__(self, task: str, *args: Any, **options: Any) -> None:
        queue = QUEUE_OF.get(TaskName(task), "default")
        try:
            self._app.send_task(task, args=list(args), queue=queue, **options)
        except Exception as exc:  # broker down: the sweeper will send it again
            log.warning("could not publish %s%r: %s", task, args, type(exc).__name__)
