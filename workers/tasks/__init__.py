"""Thin tasks: each is one call into orchestrator.services."""
