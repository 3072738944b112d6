"""Process hooks of the worker and beat: the context's life around fork and exit, and the
replications file applied when beat starts."""

from __future__ import annotations

from typing import Any

from celery.signals import beat_init, worker_process_init, worker_process_shutdown

from workers import runtime


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
