"""The Celery app of the workers and beat: configured lazily from the environment."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import beat_init, worker_process_init, worker_process_shutdown

from orchestrator.settings import load_settings
from orchestrator.taskqueue import configure_celery
from workers import logs, runtime

app = Celery("orchestrator", set_as_current=True)


@app.on_configure.connect
def _configure(sender: Celery, **_: Any) -> None:
    settings = load_settings()
    configure_celery(sender, settings)
    # Every celery command (Flower too) logs our way; worker and beat again via setup_logging.
    logs.configure(settings)


@beat_init.connect
def _apply_replications(**_: Any) -> None:
    runtime.apply_replications()


@worker_process_init.connect
def _after_fork(**_: Any) -> None:
    # Pooled DB and HTTP connections must not cross fork() (reliability.md F13).
    runtime.reset()


@worker_process_shutdown.connect
def _before_exit(**_: Any) -> None:
    # Prefork children skip exit handlers: hand the last node-call counts to Redis now.
    runtime.close()


import workers.tasks.alerts  # noqa: E402  (registers the tasks)
import workers.tasks.jobs  # noqa: E402
import workers.tasks.polling  # noqa: E402
import workers.tasks.replication  # noqa: E402, F401
