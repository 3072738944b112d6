"""The base of every task: log context, and a short retry when the database is unreachable."""

from __future__ import annotations

import logging
from contextvars import Token
from typing import Any

from celery import Task
from celery.signals import task_postrun, task_prerun
from sqlalchemy.exc import OperationalError

from orchestrator.logsetup import bind, redact, unbind

log = logging.getLogger(__name__)

# Retries stay far below the broker's visibility timeout (reliability.md F5); the sweeper
# covers anything that gives up.
DB_RETRY_COUNTDOWN = 2.0
DB_MAX_RETRIES = 10

_bound: dict[str, Token[Any]] = {}


class OrchestratorTask(Task):
    """Runs a service call; retries on a database outage, everything else is the DB's truth."""

    abstract = True
    acks_late = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            result = super().__call__(*args, **kwargs)
        except OperationalError as exc:
            log.warning("%s: database unavailable (%s); retrying", self.name, type(exc).__name__)
            raise self.retry(
                exc=exc, countdown=DB_RETRY_COUNTDOWN, max_retries=DB_MAX_RETRIES
            ) from None
        # The result reaches Flower (task-succeeded events) and the worker's log: no secrets,
        # even if a node echoed one in an error text.
        return redact(result) if isinstance(result, str) else result


class HousekeepingTask(OrchestratorTask):
    """Beat's routine work (poll fan-out, sweep, ticks): no task events, so Flower lists jobs."""

    abstract = True
    send_events = False


# Signals rather than __call__, so that celery's own lines about the task (its result, its
# failure) carry the task's id and name too.
@task_prerun.connect
def _bind_task(task_id: str | None = None, task: Task | None = None, **_: Any) -> None:
    if task_id is not None and task is not None:
        _bound[task_id] = bind(task_id=task_id, task=task.name)


@task_postrun.connect
def _unbind_task(task_id: str | None = None, **_: Any) -> None:
    token = _bound.pop(task_id or "", None)
    if token is not None:
        unbind(token)
