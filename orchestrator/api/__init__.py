"""The REST queue API (FastAPI, /api/v1) and its schemas."""
