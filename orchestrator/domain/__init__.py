"""Pure domain: states, value objects and tables (no sqlalchemy, httpx or celery)."""
