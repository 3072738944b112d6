"""Request and response models of /api/v1/schedules."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.domain.deadlines import DeadlineAfter
from orchestrator.domain.jobs import (
    MAX_DESTINATIONS,
    MIN_DESTINATIONS,
    NODE_NAME_PATTERN,
    DestinationPath,
    JobDestination,
    Labels,
    SourcePaths,
    TransferMode,
    TransferOptions,
)
from orchestrator.domain.schedules import (
    MAX_INTERVAL,
    MAX_SOURCE_PATHS,
    SCHEDULE_LABELS,
    ScheduleAlerts,
    ScheduleSpec,
)


class ScheduleCreate(ScheduleSpec):
    """A replication: copy source_paths of source_node into destination_path, on a timing (or
    into each of ``destinations``: every run is then a fan-out job)."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "media-hourly",
                    "description": "daily media to London, every hour",
                    "cron": "0 * * * *",
                    "timezone": "Europe/Paris",
                    "source_node": "paris",
                    "source_paths": ["media/daily"],
                    "destination_node": "london",
                    "destination_path": "replicas/media",
                    "overlap": "skip",
                }
            ]
        },
    )


class ScheduleUpdate(BaseModel):
    """The fields to change; the others keep their value (cron and interval replace each other)."""

    model_config = ConfigDict(extra="forbid")

    # The same bounds as ScheduleSpec: a change is refused (422, the field named) before the
    # merged schedule is validated again as a whole.
    description: str | None = Field(default=None, max_length=500)
    cron: str | None = Field(default=None, min_length=1, max_length=128)
    interval_seconds: int | None = Field(default=None, ge=1, le=MAX_INTERVAL)
    timezone: str | None = Field(default=None, min_length=1, max_length=64)
    source_node: str | None = Field(
        default=None, min_length=1, max_length=64, pattern=NODE_NAME_PATTERN
    )
    source_paths: SourcePaths | None = Field(
        default=None, min_length=1, max_length=MAX_SOURCE_PATHS
    )
    destination_node: str | None = Field(
        default=None, min_length=1, max_length=64, pattern=NODE_NAME_PATTERN
    )
    destination_path: DestinationPath | None = Field(default=None, min_length=1, max_length=1024)
    destinations: list[JobDestination] | None = Field(
        default=None,
        min_length=MIN_DESTINATIONS,
        max_length=MAX_DESTINATIONS,
        description="replaces destination_node/destination_path (and they replace it)",
    )
    options: TransferOptions | None = None
    priority: int | None = Field(default=None, ge=-100, le=100)
    max_attempts: int | None = Field(default=None, ge=1, le=20)
    overlap: Literal["skip", "queue"] | None = None
    enabled: bool | None = None
    alerts: ScheduleAlerts | None = None
    labels: Labels | None = Field(default=None, max_length=SCHEDULE_LABELS)
    mode: TransferMode | None = None
    deadline_after: DeadlineAfter = None


class RunOut(BaseModel):
    """One run of a schedule (a job)."""

    job_id: str
    state: str
    trigger: str = Field(description="schedule (a slot of the timing) or manual (run now)")
    slot_time: datetime | None
    created_at: datetime
    finished_at: datetime | None
    bytes_transferred: int
    files_completed: int
    files_skipped: int = Field(description="files already up to date at the destination")
    error_text: str | None


class ScheduleOut(ScheduleSpec):
    """A schedule with its health, last and next run, streaks and recent runs."""

    managed_by: Literal["api", "config"] = Field(
        description="config: owned by the replications file; change it there"
    )
    health: Literal["ok", "failing", "stalled", "disabled", "never run"] = Field(
        description="stalled: a run still goes after its next slot came (that slot was skipped)"
    )
    next_run_at: datetime | None
    last_run: RunOut | None
    active_run_id: str | None
    success_streak: int
    failure_streak: int
    skipped_slots: int = Field(description="slots skipped because a run was still going")
    last_skipped_slot: datetime | None
    last_error: str | None = Field(description="why the last due slot made no job")
    created_at: datetime
    runs: list[RunOut]


class ScheduleList(BaseModel):
    """Every schedule."""

    items: list[ScheduleOut]


class TallyOut(BaseModel):
    """Files and their bytes."""

    files: int
    bytes: int


class PlannedFileOut(BaseModel):
    """A file the next run would move."""

    path: str
    size: int
    why: str


class DryRunOut(BaseModel):
    """What the next run would move, listed through /files/browse on both nodes."""

    schedule_id: str
    overwrite: str
    source: TallyOut = Field(description="every file under the source paths")
    to_move: TallyOut
    new: TallyOut
    changed: TallyOut
    maybe_changed: TallyOut = Field(
        description="same size but newer at the source: the transfer compares checksums"
    )
    unchanged: TallyOut
    files: list[PlannedFileOut] = Field(description="the first 1000 files to move")
    missing_sources: list[str]
    source_errors: list[str] = Field(description="source paths the node would not describe")
    links: int = Field(description="symbolic links at the source (the symlink policy decides)")
    truncated: bool = Field(
        description="true when listing stopped early (100000 entries or 60 seconds)"
    )
