"""Logging of the celery processes (worker, beat, Flower): ours, never celery's own set-up."""

from __future__ import annotations

import os
import sys
from typing import Any

from celery.signals import setup_logging

from orchestrator.logsetup import configure_logging, register_basic_auth
from orchestrator.settings import Settings, load_settings

ROLES = ("worker", "beat", "flower", "events")


def celery_role(argv: list[str] | None = None) -> str:
    """Which celery command this process runs (``celery -A workers worker ...``)."""
    return next((a for a in (argv or sys.argv)[1:] if a in ROLES), "celery")


def configure(settings: Settings, level: str | int | None = None) -> None:
    """Our handler on the root logger; Flower's password joins the masked secrets."""
    configure_logging(settings, celery_role(), level=level)
    register_basic_auth(os.environ.get("FLOWER_BASIC_AUTH"))  # Flower's own variable


@setup_logging.connect
def _instead_of_celerys(loglevel: str | int | None = None, **_: Any) -> None:
    # A receiver of this signal replaces celery's logging set-up in worker and beat; celery's
    # --loglevel can make the process more verbose than ORCH_LOG_LEVEL, never quieter.
    configure(load_settings(), loglevel)
