"""The API as an ASGI factory: ``uvicorn orchestrator.api.asgi:app --factory``.

``hsts-orchestrator api`` serves it; the settings come from the environment (ORCH_*).
"""

from __future__ import annotations

from fastapi import FastAPI

from orchestrator.api.app import create_app
from orchestrator.bootstrap import build_context, with_local_defaults
from orchestrator.settings import load_settings


def app() -> FastAPI:
    """The API over the services configured by the environment."""
    return create_app(build_context(with_local_defaults(load_settings())))
