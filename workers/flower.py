"""Flower's login on every page: its /metrics and /healthcheck answer without it out of the box.

Flower puts basic auth on its pages and API but not on those two handlers, so anyone who can
reach its port could read the task metrics (task names, workers, queues) and probe it. In the
Flower process (``celery -A workers flower``, which imports this app) they get the same
``tornado.web.authenticated`` guard as the other pages: 401 without the credential.
"""

from __future__ import annotations

from typing import Any

GUARDED = "_hsts_orchestrator_login"


def require_login() -> list[str]:
    """Guard Flower's open handlers; the names of those guarded (none without Flower)."""
    try:
        from flower.views import monitor  # type: ignore[import-untyped]
        from tornado import web
    except ImportError:  # not the Flower process's environment: nothing to guard
        return []
    guarded = []
    for handler in (monitor.Metrics, monitor.Healthcheck):
        get: Any = handler.get
        if not getattr(get, GUARDED, False):
            wrapped: Any = web.authenticated(get)
            setattr(wrapped, GUARDED, True)
            handler.get = wrapped
        guarded.append(handler.__name__)
    return guarded
