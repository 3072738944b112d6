"""Replication schedules: what to copy, when (cron or interval, in a time zone), and slot maths."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from orchestrator.domain.deadlines import DeadlineAfter
from orchestrator.domain.jobs import (
    MAX_DESTINATIONS,
    MAX_LABELS,
    MIN_DESTINATIONS,
    NODE_NAME_PATTERN,
    DestinationPath,
    JobDestination,
    JobSpec,
    Labels,
    NodeName,
    SourcePaths,
    TransferMode,
    TransferOptions,
    checked_destinations,
    targets_of,
)

ScheduleId = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]*$")
# Incremental by default: only new and changed files move; a partial file resumes.
INCREMENTAL = TransferOptions(overwrite="diff", resume_policy="sparse_csum")
MAX_INTERVAL = 366 * 24 * 3600
MAX_SOURCE_PATHS = 100
SCHEDULE_LABELS = MAX_LABELS - 2  # each run adds "schedule" and "trigger"
ChannelName = Annotated[str, Field(min_length=1, max_length=64)]


@lru_cache(maxsize=1024)
def cron_problem(value: str) -> str:
    """What is wrong with a cron expression ('' when nothing): schedules are read often."""
    if len(value.split()) != 5 or not croniter.is_valid(value):
        return (
            f"{value!r} is not a cron expression of five fields "
            "(minute hour day-of-month month day-of-week), e.g. '0 * * * *'"
        )
    try:
        croniter(value, datetime(2000, 1, 1)).get_next(datetime)
    except (CroniterBadDateError, ValueError):
        return f"{value!r} never fires (no such date)"
    return ""


def checked_cron(value: str | None) -> str | None:
    """A cron expression with its fields one space apart; ValueError saying what is wrong."""
    if value is None:
        return None
    value = " ".join(value.split())
    problem = cron_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def known_zone(value: str) -> str:
    """The time zone's name if it is an IANA time zone; ValueError saying so otherwise."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone, e.g. 'Europe/Paris'") from None
    return value


class ScheduleAlerts(BaseModel):
    """Which alert channels hear about this schedule, and when."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    channels: list[ChannelName] = Field(default_factory=list, max_length=10)
    failure_streak: int = Field(default=3, ge=1, le=1000)
    on_run_end: Literal["never", "failure", "always"] = "never"


class ScheduleTiming(BaseModel):
    """When a schedule fires: a cron expression or an interval, in a time zone."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cron: str | None = Field(default=None, min_length=1, max_length=128)
    # Interval slots sit on multiples of the interval in UTC: the time zone is the cron's only.
    interval_seconds: int | None = Field(default=None, ge=1, le=MAX_INTERVAL, validate_default=True)
    timezone: str = Field(default="UTC", min_length=1, max_length=64)

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        return checked_cron(value)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return known_zone(value)

    @field_validator("interval_seconds")
    @classmethod
    def _one_rule(cls, value: int | None, info: ValidationInfo) -> int | None:
        # Runs for a missing interval too (validate_default), so the error names a field.
        if "cron" not in info.data:
            return value  # the cron itself was invalid: that error is enough
        if (info.data["cron"] is None) == (value is None):
            raise ValueError("give exactly one of cron and interval_seconds")
        return value


class ScheduleSpec(ScheduleTiming):
    """A replication: copy source paths of one node to a folder of another, on a timing."""

    id: str = ScheduleId
    description: str = Field(default="", max_length=500)
    source_node: str = NodeName
    source_paths: SourcePaths = Field(min_length=1, max_length=MAX_SOURCE_PATHS)
    destination_node: str | None = Field(
        default=None, min_length=1, max_length=64, pattern=NODE_NAME_PATTERN
    )
    destination_path: DestinationPath | None = Field(default=None, min_length=1, max_length=1024)
    # Or several destinations: each run is a fan-out job (after the single destination's
    # fields: its validator reads them).
    destinations: list[JobDestination] | None = Field(
        default=None,
        min_length=MIN_DESTINATIONS,
        max_length=MAX_DESTINATIONS,
        validate_default=True,
    )
    options: TransferOptions = INCREMENTAL
    priority: int = Field(default=0, ge=-100, le=100)
    max_attempts: int = Field(default=3, ge=1, le=20)
    overlap: Literal["skip", "queue"] = "skip"
    enabled: bool = True
    alerts: ScheduleAlerts = ScheduleAlerts()
    # Each run adds the labels "schedule" and "trigger"; a job holds 20 at most.
    labels: Labels = Field(default_factory=dict, max_length=SCHEDULE_LABELS)
    mode: TransferMode = TransferMode.PUSH  # pull: the destination node runs each run's transfer
    # Each run must be done this long after it starts (seconds; '2h' is taken too).
    deadline_after: DeadlineAfter = None

    @field_validator("destinations")
    @classmethod
    def _one_way_to_say_where(
        cls, value: list[JobDestination] | None, info: ValidationInfo
    ) -> list[JobDestination] | None:
        return checked_destinations(value, info)

    def targets(self) -> list[JobDestination]:
        """Every destination of a run, in the order given."""
        return targets_of(self.destinations, self.destination_node, self.destination_path)

    @field_validator("options")
    @classmethod
    def _incremental_unless_told(cls, options: TransferOptions) -> TransferOptions:
        if options.overwrite is None:
            return options.model_copy(update={"overwrite": "diff"})
        return options

    def timing(self) -> ScheduleTiming:
        """Only the timing part."""
        return ScheduleTiming(
            cron=self.cron, interval_seconds=self.interval_seconds, timezone=self.timezone
        )

    def job_spec(self, trigger: str, started: datetime | None = None) -> JobSpec:
        """The job one run of this schedule creates (``started``: when the run is made, now
        by default; its deadline, if any, counts from then, so a late slot is not born past
        it)."""
        deadline = None
        if self.deadline_after is not None:
            begun = started if started is not None else datetime.now(UTC)
            deadline = begun + timedelta(seconds=self.deadline_after)
        return JobSpec(
            source_node=self.source_node,
            source_paths=self.source_paths,
            destination_node=self.destination_node,
            destination_path=self.destination_path,
            destinations=self.destinations,
            options=self.options,
            priority=self.priority,
            max_attempts=self.max_attempts,
            labels={**self.labels, "schedule": self.id, "trigger": trigger},
            mode=self.mode,
            deadline=deadline,
        )


def slots_between(timing: ScheduleTiming, after: datetime, until: datetime) -> list[datetime]:
    """Every slot in (after, until], in UTC (for tests and previews; keep ranges short)."""
    slots = []
    slot = next_slot(timing, after)
    while slot <= until:
        slots.append(slot)
        slot = next_slot(timing, slot)
    return slots


# Cron slots follow the wall clock of the schedule's time zone. A wall-clock time the clocks
# skip (spring forward) has no slot that day; one that happens twice (fall back) has one slot,
# the first time. Near a clock change the search starts this far away, so that it cannot miss
# a slot whose UTC time and wall-clock order differ.
_NEAR = timedelta(hours=3)
_MAX_STEPS = 2000


def next_slot(timing: ScheduleTiming, after: datetime) -> datetime:
    """The first slot strictly after ``after``, in UTC."""
    if timing.interval_seconds is not None:
        # Interval slots sit on multiples of the interval since the Unix epoch (UTC), so they
        # do not drift with restarts: every 3600 s is always on the hour.
        step = timing.interval_seconds
        seconds = int(after.timestamp()) // step * step + step
        return datetime.fromtimestamp(seconds, UTC)
    assert timing.cron is not None
    zone = ZoneInfo(timing.timezone)
    start = after - _NEAR if _clock_change_near(after, zone) else after
    walls = croniter(timing.cron, _wall(start, zone))
    for _ in range(_MAX_STEPS):
        slot = _first_time(walls.get_next(datetime), zone)
        if slot is not None and slot > after:
            return slot
    raise ValueError(f"cron {timing.cron!r} has no slot after {after.isoformat()}")


def latest_slot(timing: ScheduleTiming, until: datetime) -> datetime:
    """The last slot at or before ``until``, in UTC."""
    if timing.interval_seconds is not None:
        step = timing.interval_seconds
        return datetime.fromtimestamp(int(until.timestamp()) // step * step, UTC)
    assert timing.cron is not None
    zone = ZoneInfo(timing.timezone)
    start = until + _NEAR if _clock_change_near(until, zone) else until
    # get_prev is strict: one second past the start includes a slot right on it.
    walls = croniter(timing.cron, _wall(start, zone) + timedelta(seconds=1))
    for _ in range(_MAX_STEPS):
        slot = _first_time(walls.get_prev(datetime), zone)
        if slot is not None and slot <= until:
            return slot
    raise ValueError(f"cron {timing.cron!r} has no slot before {until.isoformat()}")


def _wall(at: datetime, zone: ZoneInfo) -> datetime:
    """The wall-clock time at ``at`` in ``zone``, without a time zone."""
    return at.astimezone(zone).replace(tzinfo=None)


def _first_time(wall: datetime, zone: ZoneInfo) -> datetime | None:
    """When the wall-clock time first happens, in UTC; None if the clocks skip it."""
    moment = wall.replace(tzinfo=zone).astimezone(UTC)  # fold=0: the first occurrence
    return moment if _wall(moment, zone) == wall else None


def _clock_change_near(at: datetime, zone: ZoneInfo) -> bool:
    return (at - _NEAR).astimezone(zone).utcoffset() != (at + _NEAR).astimezone(zone).utcoffset()


def due_slot(timing: ScheduleTiming, done_until: datetime, now: datetime) -> datetime | None:
    """The slot to run now, if any: the newest one in (done_until, now].

    Slots missed while nothing ran (a downtime) collapse into this one run.
    """
    slot = latest_slot(timing, now)
    return slot if slot > done_until else None
