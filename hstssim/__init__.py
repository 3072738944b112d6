"""HSTS Node API simulator: an independent program that imports nothing from orchestrator."""
