"""Celery wiring: the app, the base task, the beat schedule and thin tasks.

`celery -A workers worker` and `celery -A workers beat` find the app here.
"""

from workers.app import app

__all__ = ["app"]
