"""Suite-wide fixtures: the databases every DB test runs on (SQLite always, PostgreSQL if set)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

POSTGRES_URL = os.environ.get("ORCH_TEST_DATABASE_URL")

DATABASES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgresql",
        id="postgresql",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(
                not POSTGRES_URL, reason="set ORCH_TEST_DATABASE_URL to run on PostgreSQL"
            ),
        ],
    ),
]


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL: a fresh SQLite file, or ORCH_TEST_DATABASE_URL (PostgreSQL)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'orchestrator.db'}"
    assert POSTGRES_URL
    return POSTGRES_URL
