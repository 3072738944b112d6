"""Prometheus metrics: read from the database and Redis at scrape time (sums over a long history
are kept between scrapes, see history.py)."""
