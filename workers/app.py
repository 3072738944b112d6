"""The Celery app of the workers and beat: configured lazily from the environment.

It imports nothing else of ``workers`` but logging and Flower's login: the task modules and the
process hooks are listed in ``include`` and imported by the worker and beat when they start (no
import loop).
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from orchestrator.settings import load_settings
from orchestrator.taskqueue import configure_celery
from workers import flower, logs

TASK_MODULES = (
    "workers.hooks",
    "workers.tasks.alerts",
    "workers.tasks.jobs",
    "workers.tasks.maintenance",
    "workers.tasks.polling",
    "workers.tasks.replication",
)

app = Celery("orchestrator", set_as_current=True, include=list(TASK_MODULES))

if logs.celery_role() == "flower":
    flower.require_login()  # its /metrics and /healthcheck too, not only its pages


@app.on_configure.connect
def _configure(sender: Celery, **_: Any) -> None:
    settings = load_settings()
    configure_celery(sender, settings)
    # Every celery command (Flower too) logs our way; worker and beat again via setup_logging.
    logs.configure(settings)
