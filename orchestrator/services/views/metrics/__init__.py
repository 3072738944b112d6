"""Prometheus metrics: read from the database and Redis at scrape time, never kept in the API."""
