"""The ``hsts-orchestrator`` command (typer + rich): run the stack, and use it over its API."""

from orchestrator.cli.main import app, main

__all__ = ["app", "main"]
