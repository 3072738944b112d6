"""/healthz (the process answers) and /readyz (the database and the broker answer)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from pydantic import BaseModel

from orchestrator.api.deps import ContextDep
from orchestrator.services.views.health import readiness

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """Liveness or readiness, with a word per dependency."""

    status: str
    checks: dict[str, str] = {}


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The API process is up."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
def readyz(ctx: ContextDep, response: Response) -> Health:
    """The database and the broker both answer."""
    checks = readiness(ctx)
    ok = all(v == "ok" for v in checks.values())
    if not ok:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Health(status="ok" if ok else "unavailable", checks=checks)
