"""Tables, engine and sessions, Alembic migrations (SQLite and PostgreSQL)."""
