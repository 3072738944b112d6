"""Readiness: can this process reach the database and the broker?"""

from __future__ import annotations

from sqlalchemy import text

from orchestrator.broker import connect
from orchestrator.services.context import ServiceContext


def readiness(ctx: ServiceContext) -> dict[str, str]:
    """A word per dependency: "ok" or what failed."""
    checks: dict[str, str] = {}
    try:
        with ctx.sessions() as session:
            session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure means not ready; say which kind
        checks["database"] = f"unreachable ({type(exc).__name__})"
    try:
        client = connect(ctx.settings)  # with Sentinel: the master they name now
        try:
            client.ping()
        finally:
            client.close()
        checks["broker"] = "ok"
    except Exception as exc:
        checks["broker"] = f"unreachable ({type(exc).__name__})"
    return checks
