"""The health check of an SSH endpoint: a TCP connect to its SSH port (it has no Node API)."""

from __future__ import annotations

import socket


def probe(host: str, port: int, timeout: float) -> str | None:
    """None when the endpoint's SSH port accepts a connection, else why not; no credential
    is sent."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        return f"SSH port {host}:{port}: {exc.strerror or type(exc).__name__}"
    return None
