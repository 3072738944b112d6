"""The API's documentation page: none by default, the OpenAPI document always."""

from __future__ import annotations

from dataclasses import replace

from fastapi.testclient import TestClient

from orchestrator.api.app import create_app
from tests.api.conftest import Api


def test_no_cdn_loaded_docs_page_unless_the_operator_asks(api: Api) -> None:
    """Swagger UI loads scripts from a CDN without integrity, on a page where people paste
    admin tokens: off by default (ORCH_API_DOCS), the OpenAPI document stays."""
    assert api.client.get("/api/v1/docs").status_code == 404
    assert api.client.get("/api/v1/openapi.json").status_code == 200
    settings = api.stack.ctx.settings.model_copy(update={"api_docs": True})
    ctx = replace(api.stack.ctx, settings=settings)
    with TestClient(create_app(ctx)) as client:
        page = client.get("/api/v1/docs")
    assert page.status_code == 200 and "swagger" in page.text.lower()
