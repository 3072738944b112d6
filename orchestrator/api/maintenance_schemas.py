"""Request and response models of /api/v1/nodes/{name}/maintenance."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from orchestrator.domain.maintenance import MaintenanceSpec


class MaintenanceCreate(MaintenanceSpec):
    """A window: recurring (cron + duration_seconds, in timezone) or one-off (start, end; ISO
    8601 with an offset), and why."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "cron": "0 2 * * SUN",
                    "duration_seconds": 7200,
                    "timezone": "Europe/Paris",
                    "reason": "weekly OS patching",
                },
                {
                    "start": "2026-12-24T22:00:00Z",
                    "end": "2026-12-25T02:00:00Z",
                    "reason": "storage migration",
                },
            ]
        },
    )


class MaintenanceOut(BaseModel):
    """A stored window, and when it happens next."""

    id: int
    node: str
    reason: str
    cron: str | None
    duration_seconds: int | None
    timezone: str
    start: datetime | None
    end: datetime | None
    description: str
    in_progress_until: datetime | None
    next_start: datetime | None
