"""The services' collaborators for this worker process, built once after fork."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from sqlalchemy.exc import OperationalError

from orchestrator.bootstrap import build_context
from orchestrator.errors import OrchestratorError
from orchestrator.services.alerts.rules import known_channels
from orchestrator.services.context import ServiceContext
from orchestrator.services.schedules.config_file import apply_at_start
from orchestrator.settings import load_settings
from orchestrator.taskqueue import Enqueuer
from workers.app import app

log = logging.getLogger(__name__)
_lock = threading.Lock()
_context: ServiceContext | None = None


def context() -> ServiceContext:
    """This process's ServiceContext (engine, node clients, settings, enqueue)."""
    global _context
    with _lock:
        if _context is None:
            _context = build_context(load_settings(), enqueue=Enqueuer(app), pre_ping=False)
        return _context


def apply_replications() -> None:
    """Reconcile the replications file into the database (beat, at start); never raises."""
    ctx = context()
    for wait in (1.0, 2.0, 4.0, 8.0, 0.0):
        try:
            apply_at_start(ctx, known_channels(ctx.settings))
            return
        except OrchestratorError as exc:
            log.error("replications file not applied: %s", exc)
            return
        except OperationalError as exc:  # the database is not up yet: beat waits a little
            log.warning("replications file: database unavailable (%s)", type(exc).__name__)
            time.sleep(wait)
    log.error("replications file not applied: the database did not answer; restart beat")


def close() -> None:
    """Release this process's node clients (their observer flushes its counts)."""
    with _lock:
        if _context is not None:
            _context.clients.close()


def reset() -> None:
    """Forget the context (after fork); the next call builds a fresh one."""
    global _context
    with _lock:
        _context = None


def worker_identity() -> str:
    """A name for leases: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"
