"""GET /metrics: the Prometheus text format, for a token with the read scope."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from orchestrator.api.deps import ContextDep, ReadDep
from orchestrator.services.views.metrics.collector import scrape

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response, include_in_schema=False)
def metrics(ctx: ContextDep, _: ReadDep) -> Response:
    """Jobs, transfers, node API calls, polls, queues and retries, read at scrape time."""
    return Response(content=scrape(ctx), media_type=CONTENT_TYPE_LATEST)
