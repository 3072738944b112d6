"""Celery wiring: the app, the base task, the beat schedule and thin tasks."""
