"""The base of every task: log context, and a short retry when the database is unreachable."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from sqlalchemy.exc import OperationalError

log = logging.getLogger(__name__)

# Retries stay far below the broker's visibility timeout (reliability.md F5); the sweeper
# covers anything that gives up.
DB_RETRY_COUNTDOWN = 2.0
DB_MAX_RETRIES = 10


class OrchestratorTask(Task):
    """Runs a service call; retries on a database outage, everything else is the DB's truth."""

    abstract = True
    acks_late = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except OperationalError as exc:
            log.warning("%s: database unavailable (%s); retrying", self.name, type(exc).__name__)
            raise self.retry(
                exc=exc, countdown=DB_RETRY_COUNTDOWN, max_retries=DB_MAX_RETRIES
            ) from None
