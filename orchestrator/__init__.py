"""hsts-orchestrator: server-to-server transfers between IBM Aspera HSTS nodes."""

__version__ = "0.1.0"
