"""Logging of the celery processes (worker, beat, Flower): ours, never celery's own set-up."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from typing import Any

from celery.signals import setup_logging

from orchestrator.logsetup import configure_logging, register_basic_auth
from orchestrator.settings import Settings, load_settings
from orchestrator.taskqueue import beat_schedule

ROLES = ("worker", "beat", "flower", "events")


def celery_role(argv: list[str] | None = None) -> str:
    """Which celery command this process runs (``celery -A workers worker ...``)."""
    return next((a for a in (argv or sys.argv)[1:] if a in ROLES), "celery")


def configure(settings: Settings, level: str | int | None = None) -> None:
    """Our handler on the root logger; Flower's password joins the masked secrets."""
    handler = configure_logging(settings, celery_role(), level=level)
    handler.addFilter(QuietClockwork(e["task"] for e in beat_schedule(settings).values()))
    register_basic_auth(os.environ.get("FLOWER_BASIC_AUTH"))  # Flower's own variable


class QuietClockwork(logging.Filter):
    """Celery's lines about the tasks beat sends on a clock (sent, received, succeeded) are
    DEBUG: an idle stack does not print a line a second. Their failures stay loud."""

    def __init__(self, task_names: Iterable[str]) -> None:
        super().__init__()
        self.task_names = tuple(task_names)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not record.name.startswith("celery."):
            return True
        message = record.getMessage()
        if not any(f"{name}[" in message or f"({name})" in message for name in self.task_names):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)


@setup_logging.connect
def _instead_of_celerys(loglevel: str | int | None = None, **_: Any) -> None:
    # A receiver of this signal replaces celery's logging set-up in worker and beat; celery's
    # --loglevel can make the process more verbose than ORCH_LOG_LEVEL, never quieter.
    configure(load_settings(), loglevel)
